"""Fast traceback text and fingerprints for captured exceptions.

``traceback.format_exception`` on Python 3.11 computes column anchors for
every frame, which costs about 20 times more than reading the source lines
with ``linecache``. Flare only needs the classic text, so it builds it here.
"""

from __future__ import annotations

import hashlib
import linecache
import re
from types import TracebackType

__all__ = [
    "exception_summary",
    "exception_text",
    "exception_type_name",
    "fingerprint_exception",
    "fingerprint_parts",
    "format_exception",
    "normalize_message",
]

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_MAX_CHAIN = 8

# Placeholders for the parts of a message that vary between occurrences of
# one fault: quoted values, UUIDs, hex ids, e-mail addresses and numbers.
_VARIABLE_PARTS = [
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "<email>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]
# Top-level packages whose frames a fingerprint skips when the app has frames.
_FRAMEWORK_PACKAGES = frozenset(
    {
        "anyio",
        "asyncio",
        "concurrent",
        "contextlib",
        "fastapi",
        "flare_core",
        "starlette",
        "threading",
        "uvicorn",
    }
)
# Path segments that are ids: numbers, UUIDs and long hex or mixed tokens.
_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-fA-F-]{16,}|(?=.*\d)[A-Za-z0-9_-]{20,})$")


_CAPTURE_MODULE = "flare_core.capture"


def exception_type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def exception_text(exc: BaseException) -> str:
    """Return ``str(exc)``, or "" when the exception's ``__str__`` raises."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break capture
        return ""


def exception_summary(exc: BaseException) -> str:
    """Return "Name: text" like the interpreter's last traceback line, or "Name"."""
    name = type(exc).__name__
    text = exception_text(exc)
    return f"{name}: {text}" if text else name


def _exception_line(exc: BaseException) -> str:
    name = exception_type_name(exc)
    text = exception_text(exc)
    return f"{name}: {text}" if text else name


def _frames(tb: TracebackType | None, max_frames: int) -> tuple[list[str], int]:
    """Return formatted frames, keeping the outermost and innermost ones."""
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    # The capture middleware's own frame is where Flare caught the
    # exception, not part of the fault; the interpreter would not show it.
    while frames and frames[0].tb_frame.f_globals.get("__name__") == _CAPTURE_MODULE:
        frames.pop(0)
    skipped = 0
    if len(frames) > max_frames:
        head = max_frames // 3
        tail = max_frames - head
        skipped = len(frames) - max_frames
        frames = frames[:head] + frames[-tail:]
    lines = []
    for index, item in enumerate(frames):
        code = item.tb_frame.f_code
        lineno = item.tb_lineno
        lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
        source = linecache.getline(
            code.co_filename, lineno, item.tb_frame.f_globals
        ).strip()
        if source:
            lines.append(f"    {source}\n")
        if skipped and index == max_frames // 3 - 1:
            lines.append(f"  ... {skipped} frames omitted ...\n")
    return lines, skipped


def format_exception(exc: BaseException, max_frames: int = 60) -> str:
    """Format ``exc`` and its causes like the interpreter does, without anchors."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for item, link in reversed(chain):
        frame_lines, _ = _frames(item.__traceback__, max_frames)
        if frame_lines:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(frame_lines)
        parts.append(_exception_line(item) + "\n")
        if link:
            parts.append(link)
    return "".join(parts)


def normalize_message(message: str) -> str:
    for pattern, placeholder in _VARIABLE_PARTS:
        message = pattern.sub(placeholder, message)
    return message[:300]


def normalize_path(path: str) -> str:
    """Replace id-like path segments, so ``/items/7`` and ``/items/9`` match."""
    return "/".join(
        "{id}" if _ID_SEGMENT.match(segment) else segment for segment in path.split("/")
    )


def fingerprint_parts(*parts: object) -> str:
    text = "\x1f".join(str(part) for part in parts)
    # Lone surrogates are cleaned later in enrichment; hash them as they are.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def fingerprint_exception(exc: BaseException, frames: int = 6) -> str:
    """Hash the exception type and its innermost frames' module and function.

    Line numbers are left out, so editing unrelated lines above the fault
    keeps the group, while a different call site or exception type splits it.
    Frames of the server, the framework and Flare are left out whenever the
    app has frames of its own, so upgrading FastAPI keeps the groups too.
    """
    tb = exc.__traceback__
    names = []
    app_names = []
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", "?"))
        name = f"{module}:{frame.f_code.co_qualname}"
        names.append(name)
        if module.partition(".")[0] not in _FRAMEWORK_PACKAGES:
            app_names.append(name)
        tb = tb.tb_next
    if not names:
        message = normalize_message(exception_text(exc))
        return fingerprint_parts("exc", exception_type_name(exc), message)
    chosen = app_names or names
    return fingerprint_parts("exc", exception_type_name(exc), *chosen[-frames:])
