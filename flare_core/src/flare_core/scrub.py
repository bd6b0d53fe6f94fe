"""Secret scrubbing and size limits, applied to every entry before buffering.

Keys match the denylist exactly and case-insensitively (``max_tokens`` is
kept while ``token`` is filtered). Values found under a secret key or a
secret header are also removed wherever else they occur in the entry, so
``raise ValueError(f"bad token {token}")`` does not leak a token that came
with the request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .config import FlareConfig, normalize_key
from .models import FlareLogEntry

__all__ = ["FILTERED", "Scrubber", "encode_safely", "truncate_text"]

FILTERED = "[Filtered]"

# A longer fingerprint, which only a plugin sets, is replaced by its SHA-256
# digest: a group's key goes into URLs, Redis keys and index tokens, and
# the digest keeps distinct keys distinct where cutting would merge them.
MAX_FINGERPRINT_CHARS = 200
# Shorter secret values are filtered under their key but not searched for
# elsewhere in the entry, because replacing "123" everywhere corrupts text.
_MIN_SECRET_LEN = 4

# "key=value", "key: value" and '"key": "value"' inside free text. Keys and
# values are matched separately, so that the value of a harmless key never
# hides a pair inside it, as in "failed: password=xyz". An unquoted value may
# start with an auth scheme, as in "Authorization: Bearer x".
_KEY = re.compile(r"""["']?(?P<name>[A-Za-z][\w.\[\]-]{1,40})["']?\s*[:=]\s*""")
# A quoted value honours backslash escapes and may be cut off by truncation,
# so it runs to its closing quote or to the end of the text.
_VALUE = re.compile(
    r""""(?:[^"\\]|\\.)*(?:"|$)|'(?:[^'\\]|\\.)*(?:'|$)"""
    r"""|(?i:(?:Bearer|Basic|Token|Digest)\s+)?[^\s&,;'"]+"""
)
_AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest"})
_COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE)
_BEARER_WORDS = frozenset({"bearer", "basic", "token"})
# Words of text folded by _fold, as normalize_key spells denylist keys.
_WORD = re.compile(r"[a-z0-9_]+")
# The text after a key that makes it start a pair: an optional closing
# bracket or quote, then ":" or "=".
_AFTER_KEY = re.compile(r"""\]?["']?\s*[:=]\s*""")


def _filter_scheme(match: re.Match[str]) -> str:
    return f"{match.group(1)} {FILTERED}"


def _fold(text: str) -> str | None:
    """Lower-case ``text`` and read ``-`` as ``_``, keeping every position.

    Returns None for the rare text whose lower-case form has another length
    (such as "İ"), where positions in the folded text would not match.
    """
    folded = text.lower().replace("-", "_")
    return folded if len(folded) == len(text) else None


def _pair_value(
    text: str, folded: str, start: int, end: int
) -> tuple[int, int, str] | None:
    """Return the span and quote of the value of a key found at ``start:end``.

    The key must be a whole word, or the last part of a form key such as
    ``user[password]``, and be followed by ``:`` or ``=``.
    """
    before = folded[start - 1] if start else ""
    if before.isalnum() or before in "_.]":
        return None
    if before == "[" and folded[end : end + 1] != "]":
        return None
    after = _AFTER_KEY.match(text, end)
    if after is None:
        return None
    value = _VALUE.match(text, after.end())
    if value is None:
        return None
    quote = value.group(0)[0] if value.group(0)[:1] in "'\"" else ""
    return after.end(), value.end(), quote


def truncate_text(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """Cut ``text`` to about ``limit`` characters, marking how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    marker = f"\n... [truncated {cut} characters] ...\n"
    if keep_tail:
        head = limit // 3
        return text[:head] + marker + text[len(text) - (limit - head) :]
    return text[:limit] + marker.rstrip("\n ")


class Scrubber:
    """Remove secrets from one entry; one instance serves every entry."""

    def __init__(self, config: FlareConfig) -> None:
        self.headers = config.scrub_header_set
        self.fields = config.scrub_field_set
        self.scrub_messages = config.scrub_messages
        self.config = config

    def scrub_entry(self, entry: FlareLogEntry) -> None:
        found: set[str] = set()
        request = entry.context.get("request")
        if isinstance(request, dict):
            self._scrub_request(request, found)
        entry.context = self._scrub_value(entry.context, found)
        if self.scrub_messages:
            for name in ("message", "error", "endpoint"):
                value = getattr(entry, name)
                if value:
                    setattr(entry, name, self.scrub_text(value, found))
            if entry.stack_trace:
                entry.stack_trace = self.scrub_stack_trace(entry.stack_trace, found)
        if found:
            entry.context = self._replace_everywhere(entry.context, found)

    def limit_entry(self, entry: FlareLogEntry) -> None:
        config = self.config
        entry.message = truncate_text(entry.message, config.max_message_chars)
        if entry.error:
            entry.error = truncate_text(entry.error, config.max_message_chars)
        if entry.stack_trace:
            entry.stack_trace = truncate_text(
                entry.stack_trace, config.max_stack_trace_chars, keep_tail=True
            )
        if entry.endpoint:
            entry.endpoint = truncate_text(entry.endpoint, 2048)
        if entry.fingerprint and len(entry.fingerprint) > MAX_FINGERPRINT_CHARS:
            entry.fingerprint = _digest(entry.fingerprint)
        entry.context = _limit_context(entry.context, config.max_context_chars)
        encode_safely(entry)

    def scrub_text(self, text: str, found: Iterable[str] = ()) -> str:
        if "=" in text or ":" in text:
            text = self._scrub_pairs_and_schemes(text)
        elif any(word in text.lower() for word in _BEARER_WORDS):
            # No pair can start here; only a bare "Bearer <token>" can.
            text = _BEARER.sub(_filter_scheme, text)
        for secret in sorted(found, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, FILTERED)
        return text

    def _scrub_pairs_and_schemes(self, text: str) -> str:
        folded = _fold(text)
        if folded is None:
            text = self._scrub_pairs_slowly(text)
            return _BEARER.sub(_filter_scheme, text)
        # Set operations on the text's words find the few denylisted keys
        # present, so that a long text is searched only for those.
        words = set(_WORD.findall(folded))
        names = words & self.fields
        if names:
            text = self._scrub_pairs(text, folded, names)
        if words & _BEARER_WORDS:
            text = _BEARER.sub(_filter_scheme, text)
        return text

    def scrub_stack_trace(self, trace: str, found: Iterable[str] = ()) -> str:
        """Scrub the exception lines of a stack trace, and secrets anywhere.

        Frame lines ("  File ...") and source lines are indented; they show
        code, not request data, so only the unindented lines (the exception
        messages and chain notes) are searched for ``key=value`` pairs. Every
        secret value seen in the request is still removed from every line.
        """
        lines = trace.split("\n")
        for index, line in enumerate(lines):
            if line and not line[0].isspace():
                lines[index] = self.scrub_text(line)
        text = "\n".join(lines)
        for secret in sorted(found, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, FILTERED)
        return text

    def _scrub_pairs(self, text: str, folded: str, names: Iterable[str]) -> str:
        """Replace the values of ``key=value`` pairs whose key is in ``names``."""
        spans: list[tuple[int, int, str]] = []
        for name in names:
            start = folded.find(name)
            while start != -1:
                span = _pair_value(text, folded, start, start + len(name))
                if span is not None:
                    spans.append(span)
                start = folded.find(name, start + 1)
        if not spans:
            return text
        parts: list[str] = []
        done = 0
        for value_start, value_end, quote in sorted(spans):
            if value_start < done:
                continue
            parts.append(text[done:value_start])
            parts.append(f"{quote}{FILTERED}{quote}")
            done = value_end
        parts.append(text[done:])
        return "".join(parts)

    def _scrub_pairs_slowly(self, text: str) -> str:
        """Scrub pairs in text whose lower-case form changes its length."""
        parts: list[str] = []
        done = 0
        for key in _KEY.finditer(text):
            if (
                key.start() < done
                or normalize_key(key.group("name")) not in self.fields
            ):
                continue
            value = _VALUE.match(text, key.end())
            if value is None:
                continue
            quote = value.group(0)[0] if value.group(0)[:1] in "'\"" else ""
            parts.append(text[done : key.end()])
            parts.append(f"{quote}{FILTERED}{quote}")
            done = value.end()
        parts.append(text[done:])
        return "".join(parts)

    def _scrub_request(self, request: dict[str, Any], found: set[str]) -> None:
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name in list(headers):
                lowered = name.lower()
                if lowered in self.headers or normalize_key(lowered) in self.fields:
                    self._remember(lowered, str(headers[name]), found)
                    headers[name] = FILTERED
        query = request.get("query_string")
        if isinstance(query, str) and query:
            request["query_string"] = self._scrub_query(query, found)
        body = request.get("body")
        if isinstance(body, str) and body:
            request["body"] = self._scrub_body(body, request, found)

    def _remember(self, header: str, value: str, found: set[str]) -> None:
        """Note the secret parts of a header value, so copies elsewhere are removed.

        Only values are secret. The cookie names of "a=1; session=xyz" and the
        scheme of "Bearer abc" are ordinary words that must stay readable.
        """
        if header in _COOKIE_HEADERS:
            # Repeated Cookie headers arrive joined by ", ", and cookie values
            # never contain a comma or a semicolon.
            pairs = re.split(r"[;,]", value)
            parts = [pair.partition("=")[2] for pair in pairs]
        else:
            # A repeated header arrives joined by ", ", as "Bearer a, Bearer b".
            parts = []
            for item in value.split(","):
                words = item.split()
                if len(words) > 1 and words[0].lower() in _AUTH_SCHEMES:
                    words = words[1:]
                parts.extend(words)
        for part in parts:
            part = part.strip().strip('"')
            if len(part) >= _MIN_SECRET_LEN:
                found.add(part)

    def _scrub_query(self, query: str, found: set[str]) -> str:
        pairs = parse_qsl(query, keep_blank_values=True)
        cleaned = []
        for key, value in pairs:
            if normalize_key(key) in self.fields:
                if len(value) >= _MIN_SECRET_LEN:
                    found.add(value)
                value = FILTERED
            cleaned.append((key, value))
        return urlencode(cleaned, safe="[]")

    def _scrub_body(self, body: str, request: dict[str, Any], found: set[str]) -> str:
        content_type = str(request.get("content_type") or "")
        if "json" in content_type or body[:1] in "{[":
            try:
                parsed = json.loads(body)
            except ValueError:
                return self.scrub_text(body, found)
            return json.dumps(self._scrub_value(parsed, found), ensure_ascii=False)
        if "x-www-form-urlencoded" in content_type:
            return self._scrub_query(body, found)
        return self.scrub_text(body, found)

    def _scrub_value(self, value: Any, found: set[str]) -> Any:
        if isinstance(value, dict):
            cleaned = {}
            for key, item in value.items():
                if isinstance(key, str) and normalize_key(key) in self.fields:
                    if isinstance(item, str) and len(item) >= _MIN_SECRET_LEN:
                        found.add(item)
                    cleaned[key] = FILTERED
                else:
                    cleaned[key] = self._scrub_value(item, found)
            return cleaned
        if isinstance(value, list | tuple):
            return [self._scrub_value(item, found) for item in value]
        if isinstance(value, str) and self.scrub_messages:
            return self.scrub_text(value, ())
        return value

    def _replace_everywhere(self, value: Any, found: set[str]) -> Any:
        if isinstance(value, dict):
            return {
                key: self._replace_everywhere(item, found)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._replace_everywhere(item, found) for item in value]
        if isinstance(value, str):
            for secret in found:
                if secret in value:
                    value = value.replace(secret, FILTERED)
        return value


_TEXT_FIELDS = (
    "message",
    "error",
    "stack_trace",
    "endpoint",
    "route",
    "exception_type",
    "event",
    "request_id",
    "http_method",
    "ip_address",
    "fingerprint",
)


def encode_safely(entry: FlareLogEntry) -> None:
    """Replace lone surrogates in every text of ``entry``.

    A message such as that of an OSError for a file name decoded with
    "surrogateescape" contains them, and no UTF-8 encoder accepts them, so a
    backend would fail to write the entry and retry its batch forever.
    """
    for name in _TEXT_FIELDS:
        value = getattr(entry, name)
        if isinstance(value, str):
            setattr(entry, name, _utf8_text(value))
    if _may_hold_surrogates(entry.context):
        entry.context = _utf8_value(entry.context)


def _may_hold_surrogates(value: Any) -> bool:
    """Check a whole context with one encode, instead of string by string."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return True
    return False


def _utf8_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _utf8_value(value: Any) -> Any:
    if isinstance(value, str):
        return _utf8_text(value)
    if isinstance(value, dict):
        return {_utf8_value(key): _utf8_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_utf8_value(item) for item in value]
    return value


def _limit_context(context: dict[str, Any], limit: int) -> dict[str, Any]:
    try:
        text = json.dumps(context, default=str, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return {"unserializable_context": f"{type(exc).__name__}: {exc}"}
    if len(text) <= limit:
        return json.loads(text) if _needs_roundtrip(context) else context
    per_string = max(64, limit // 4)
    shortened = _shorten_strings(json.loads(text), per_string)
    text = json.dumps(shortened, ensure_ascii=False)
    if len(text) <= limit:
        return shortened  # type: ignore[no-any-return]
    return {"truncated_context": truncate_text(text, limit)}


def _needs_roundtrip(value: Any) -> bool:
    """Tell whether ``value`` contains anything JSON would change (objects, tuples)."""
    if isinstance(value, dict):
        return any(
            not isinstance(k, str) or _needs_roundtrip(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_needs_roundtrip(item) for item in value)
    return not isinstance(value, str | int | float | bool | type(None))


def _shorten_strings(value: Any, limit: int) -> Any:
    if isinstance(value, dict):
        return {key: _shorten_strings(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten_strings(item, limit) for item in value]
    if isinstance(value, str):
        return truncate_text(value, limit)
    return value


def _digest(fingerprint: str) -> str:
    """Return the SHA-256 hex digest of a fingerprint's UTF-8 text."""
    data = fingerprint.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()
