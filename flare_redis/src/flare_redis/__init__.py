"""Flare storage in Redis Streams, for many app processes and hosts.

Installing flare-redis registers the ``redis`` backend, so
``setup(app, redis_url="redis://...")`` stores entries in Redis.
"""

from __future__ import annotations

from ._codec import encode_queue_item
from .storage import RedisStorage

__all__ = ["RedisStorage", "encode_queue_item"]
