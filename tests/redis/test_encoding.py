"""Entries round-trip byte for byte: large stack traces, unicode, odd characters."""

from __future__ import annotations

import pytest

from flare_core import LogQuery
from flare_redis import RedisStorage

from .conftest import make_entry

ODD_TEXTS = [
    "ünïcode ✓ 日本語 emoji 😀 and RTL \u202e text",
    "\x00\x01\x02\x7f binary \xff\xfe looking",
    "line one\nline two\r\nline three\ttab",
    '{"json": "inside", "quote": "\\""}',
    "\n",
    "Lua magic % . [ ] ( ) * + - ? ^ $",
]


@pytest.mark.parametrize("text", ODD_TEXTS)
async def test_odd_text_round_trips(storage: RedisStorage, text: str) -> None:
    entry = make_entry(
        message=text, error=text, endpoint=f"/{text}", context={text: text}
    )
    await storage.write_batch([entry])
    assert entry.id is not None
    stored = await storage.get(entry.id)
    assert stored == entry


@pytest.mark.parametrize("text", ODD_TEXTS)
async def test_odd_text_filters_and_groups(storage: RedisStorage, text: str) -> None:
    entry = make_entry(event=text, endpoint=text, fingerprint=text)
    await storage.write_batch([entry])
    by_event = await storage.query(
        LogQuery(event=text, endpoint=text, fingerprint=text)
    )
    group = await storage.get_group(text)
    assert [item.id for item in by_event.items] == [entry.id]
    assert group is not None
    assert group.count == 1


async def test_megabyte_stack_trace_round_trips(storage: RedisStorage) -> None:
    trace = "".join(f'  File "app.py", line {i}, in handler ü\n' for i in range(30_000))
    assert len(trace) > 1_000_000
    entry = make_entry(stack_trace=trace, message="big")
    await storage.write_batch([entry, make_entry(message="small")])
    assert entry.id is not None
    stored = await storage.get(entry.id)
    page = await storage.query(LogQuery(q="big"))
    assert stored is not None
    assert stored.stack_trace == trace
    assert [item.id for item in page.items] == [entry.id]


async def test_microsecond_timestamps_round_trip(storage: RedisStorage) -> None:
    entry = make_entry(0.000001)
    await storage.write_batch([entry])
    page = await storage.query(LogQuery())
    assert page.items[0].timestamp == entry.timestamp
