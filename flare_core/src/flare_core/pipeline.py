"""The bounded buffer between the request path and the storage worker.

The request path only calls ``EntryBuffer.put``, which never awaits and
never blocks on I/O. The worker task drains the buffer every
``worker_interval_seconds``, or as soon as ``worker_batch_size`` entries
wait, writes each batch in one call to the storage, applies retention, and
on shutdown flushes what is left within ``flush_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from .errors import StorageUnavailable
from .models import FlareLogEntry
from .storage import Storage

__all__ = ["EntryBuffer", "Worker"]

logger = logging.getLogger(__name__)

# Short enough that a recovered storage is found before a full buffer has
# dropped much; one failed attempt every 5 s costs next to nothing.
_MAX_BACKOFF_SECONDS = 5.0


class EntryBuffer:
    """A bounded FIFO of entries; when full, the oldest entry is dropped and counted.

    ``put`` is safe from the event loop and from other threads.
    """

    def __init__(self, maxsize: int, batch_size: int) -> None:
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.dropped = 0
        self._items: deque[FlareLogEntry] = deque()
        self._lock = threading.Lock()
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_drop_log = -60.0

    def __len__(self) -> int:
        return len(self._items)

    def bind(self, loop: asyncio.AbstractEventLoop, wakeup: asyncio.Event) -> None:
        self._loop = loop
        self._wakeup = wakeup

    def put(self, entry: FlareLogEntry) -> None:
        dropped = False
        with self._lock:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
                dropped = True
            self._items.append(entry)
            full = len(self._items) >= self.batch_size
        if dropped:
            self._log_drop()
        if full:
            self._wake()

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 60:
            self._last_drop_log = now
            logger.warning(
                "Flare buffer is full (%d entries), so the oldest entry was dropped; "
                "%d dropped so far (logged once a minute)",
                self.maxsize,
                self.dropped,
            )

    def take(self, count: int) -> list[FlareLogEntry]:
        with self._lock:
            count = min(count, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def restore(self, entries: Sequence[FlareLogEntry]) -> None:
        """Put a failed batch back at the front, older than anything buffered.

        When that overflows the cap, the oldest entries are dropped and counted.
        """
        with self._lock:
            self._items.extendleft(reversed(entries))
            overflow = max(0, len(self._items) - self.maxsize)
            for _ in range(overflow):
                self._items.popleft()
            self.dropped += overflow
        if overflow:
            self._log_drop()

    def _wake(self) -> None:
        wakeup, loop = self._wakeup, self._loop
        if wakeup is None or loop is None or wakeup.is_set():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)


class Worker:
    """Move batches from the buffer to the storage, off the request path."""

    def __init__(
        self,
        buffer: EntryBuffer,
        storage: Storage,
        *,
        interval: float,
        batch_size: int,
        max_entries: int,
        retention: timedelta,
        notify: Callable[[Sequence[FlareLogEntry]], Any] | None = None,
    ) -> None:
        self.buffer = buffer
        self.storage = storage
        self.interval = interval
        self.batch_size = batch_size
        self.max_entries = max_entries
        self.retention = retention
        self.notify = notify
        self.written = 0
        self.rejected = 0
        self.storage_ready = False
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._failures = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._wakeup = asyncio.Event()
        self.buffer.bind(asyncio.get_running_loop(), self._wakeup)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="flare-worker")

    async def stop(self, timeout: float) -> None:
        """Stop the loop, then flush the buffer for at most ``timeout`` seconds."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        reason = self.last_error or "the storage never started"
        if self.storage_ready and len(self.buffer):
            try:
                await asyncio.wait_for(self.flush(), timeout=max(timeout, 0.1))
            except TimeoutError:
                reason = f"the flush timed out after {max(timeout, 0.1)} s"
            else:
                reason = self.last_error or reason
        if len(self.buffer):
            logger.warning(
                "Flare shut down with %d entries unwritten: %s",
                len(self.buffer),
                reason,
            )

    async def _run(self) -> None:
        while not self._stopping:
            if not self.storage_ready:
                await self._start_storage()
                if not self.storage_ready:
                    await self._sleep(self._backoff())
                    continue
            # The backoff sleep consumes wake-ups, so after a failure, or with a
            # full batch already waiting, write at once instead of waiting.
            if not self._failures and len(self.buffer) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self.interval)
            self._wakeup.clear()
            await self.cycle()
            if self._failures:
                await self._sleep(self._backoff())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested(), timeout=seconds)

    async def _stop_requested(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()

    def _backoff(self) -> float:
        return min(_MAX_BACKOFF_SECONDS, 0.5 * 2.0 ** min(self._failures, 8))

    async def _start_storage(self) -> None:
        try:
            await self.storage.start()
        except Exception as exc:  # noqa: BLE001 - any backend fault means "retry later"
            self._failed("start", exc)
            await _close_quietly(self.storage)
            return
        self.storage_ready = True
        self._recovered()

    async def cycle(self) -> None:
        """Write everything buffered, then apply retention; keep entries on failure."""
        if not await self.flush():
            return
        try:
            await self.storage.apply_retention(self.max_entries, self.retention)
        except Exception as exc:  # noqa: BLE001 - retention retries next cycle
            self._failed("apply retention", exc)

    async def flush(self) -> bool:
        while len(self.buffer):
            batch = self.buffer.take(self.batch_size)
            try:
                await self.storage.write_batch(batch)
            except asyncio.CancelledError:
                self.buffer.restore(batch)
                raise
            except Exception as exc:  # noqa: BLE001 - the batch is kept for the retry
                written = await self._write_one_by_one(batch, exc)
                if written is None:
                    return False
                batch = written
            self.written += len(batch)
            self._recovered()
            await self._notify(batch)
        return True

    async def _write_one_by_one(
        self, batch: list[FlareLogEntry], error: Exception
    ) -> list[FlareLogEntry] | None:
        """Tell a storage outage from entries the storage can never write.

        A ``StorageUnavailable`` error is an outage without further tries.
        Otherwise the batch is written entry by entry. While nothing has been
        written yet,
        two failures in a row count as an outage: the unwritten entries go
        back to the buffer and None is returned. An entry that fails while a
        later one succeeds is one the backend rejects; it is counted in
        ``rejected``, logged, and left out, so it cannot block every write
        behind it. Returns the entries written.
        """
        if len(batch) == 1 or isinstance(error, StorageUnavailable):
            self.buffer.restore(batch)
            self._failed("write", error)
            return None
        written: list[FlareLogEntry] = []
        failed: list[tuple[int, Exception]] = []
        last_written = -1
        for index, entry in enumerate(batch):
            if not written and len(failed) >= 2:
                self.buffer.restore(batch)
                self._failed("write", error)
                return None
            try:
                await self.storage.write_batch([entry])
            except asyncio.CancelledError:
                unwritten = [batch[position] for position, _ in failed]
                self.buffer.restore(unwritten + batch[index:])
                raise
            except Exception as exc:  # noqa: BLE001 - judged once the batch is done
                failed.append((index, exc))
                continue
            written.append(entry)
            last_written = index
        if not written:
            self.buffer.restore(batch)
            self._failed("write", error)
            return None
        # An entry that failed after the last success may have met the start
        # of an outage, so it goes back to the buffer instead of being dropped.
        self.buffer.restore(
            [batch[index] for index, _ in failed if index > last_written]
        )
        for index, reason in failed:
            if index < last_written:
                self._reject(batch[index], reason)
        return written

    def _reject(self, entry: FlareLogEntry, exc: Exception) -> None:
        self.rejected += 1
        logger.warning(
            "Flare storage %r rejected entry %s (event %r) and it is dropped: %s: %s",
            getattr(self.storage, "name", "?"),
            entry.request_id or entry.fingerprint,
            entry.event,
            type(exc).__name__,
            exc,
        )

    async def _notify(self, batch: Sequence[FlareLogEntry]) -> None:
        if self.notify is None:
            return
        result = self.notify(batch)
        if inspect.isawaitable(result):
            await result

    def _failed(self, action: str, exc: BaseException) -> None:
        self._failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failures == 1:
            logger.warning(
                "Flare storage %r failed to %s: %s; %d entries buffered, retrying with "
                "backoff (logged once per outage)",
                getattr(self.storage, "name", "?"),
                action,
                self.last_error,
                len(self.buffer),
            )

    def _recovered(self) -> None:
        if self._failures:
            logger.warning(
                "Flare storage %r recovered after %d failed attempts",
                getattr(self.storage, "name", "?"),
                self._failures,
            )
        self._failures = 0
        self.last_error = None


async def _close_quietly(storage: Storage) -> None:
    try:
        await storage.close()
    except Exception:
        logger.debug("closing a storage that failed to start raised", exc_info=True)
