"""Redis key names: every key of one Flare store shares one cluster hash tag.

Redis Cluster hashes only the part of a key between the first ``{`` and
the next ``}`` when that part is non-empty. Keys with the same hash tag
thus live in the same slot, and one Lua script may touch all of them. A
configured key that already has a hash tag is used as written. A key
without one gets its first ``:``-separated segment wrapped in braces:
``flare:logs`` becomes ``{flare}:logs`` and ``flare:queue`` becomes
``{flare}:queue``. Every other key is the stream's name plus a suffix.
"""

from __future__ import annotations

from redis.crc import key_slot

from flare_core import FlareConfigError

__all__ = ["Keys", "hash_tag", "redis_key"]


def hash_tag(key: str) -> str | None:
    """Return the hash tag Redis Cluster hashes for ``key``, or None."""
    start = key.find("{")
    if start == -1:
        return None
    end = key.find("}", start + 1)
    if end == -1 or end == start + 1:
        return None
    return key[start + 1 : end]


def redis_key(key: str, option: str) -> str:
    """Return the Redis key for a configured key name, with a hash tag."""
    if not key or not key.strip():
        raise FlareConfigError(
            f"invalid {option} {key!r}: set it to a non-empty Redis key name, "
            "such as 'flare:logs'",
            option=option,
        )
    if hash_tag(key) is not None:
        return key
    head, separator, rest = key.partition(":")
    return "{" + head + "}" + separator + rest


class Keys:
    """The Redis key names of one store, derived from stream_key and queue_key."""

    def __init__(self, stream_key: str, queue_key: str) -> None:
        self.stream_key = stream_key
        self.queue_key = queue_key
        self.stream = redis_key(stream_key, "stream_key")
        self.queue = redis_key(queue_key, "queue_key")
        self.all = f"{self.stream}:i:all"
        self.invalid = f"{self.stream}:invalid"

    def level(self, level: str) -> str:
        return f"{self.stream}:i:level:{level}"

    def event(self, event: str) -> str:
        return f"{self.stream}:i:event:{event}"

    def status(self, status: int) -> str:
        return f"{self.stream}:i:status:{status}"

    def endpoint(self, endpoint: str) -> str:
        return f"{self.stream}:i:endpoint:{endpoint}"

    def fingerprint(self, fingerprint: str) -> str:
        return f"{self.stream}:i:fp:{fingerprint}"

    def group(self, fingerprint: str) -> str:
        return f"{self.stream}:g:{fingerprint}"

    def group_sort(self, sort: str, status: str | None) -> str:
        """Return the sorted set of groups by ``sort``; None means not ignored."""
        return f"{self.stream}:gs:{sort}:{status or 'visible'}"

    def check_one_slot(self) -> None:
        """Raise ``FlareConfigError`` when stream and queue hash to different slots."""
        stream_slot = key_slot(self.stream.encode())
        queue_slot = key_slot(self.queue.encode())
        if stream_slot == queue_slot:
            return
        raise FlareConfigError(
            f"stream_key {self.stream_key!r} (Redis key {self.stream!r}, slot "
            f"{stream_slot}) and queue_key {self.queue_key!r} (Redis key "
            f"{self.queue!r}, slot {queue_slot}) hash to different Redis Cluster "
            "slots, so one script cannot write both. Give both the same hash tag, "
            "for example 'myapp:{flare}:logs' and 'myapp:{flare}:queue'.",
            option="queue_key",
        )
