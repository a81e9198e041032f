"""faust_ext.gather: when a batch is yielded, its size, and when its events are acked.

The Faust tests run a real agent on Faust's in-memory test channel, so the
stream, its processors and its acks are Faust's own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import faust
import pytest

from streams.worker.faust_ext.gather import gather, gather_wait

_apps = itertools.count()


def test_wait_for_a_first_value_when_nothing_is_buffered():
    assert gather_wait(0, 8, None, 0.05, 100.0) is None


def test_a_full_buffer_is_yielded_at_once():
    assert gather_wait(8, 8, 99.99, 0.05, 100.0) == 0.0
    assert gather_wait(9, 8, 99.99, 0.05, 100.0) == 0.0


def test_the_wait_counts_from_the_oldest_buffered_value():
    assert gather_wait(3, 8, 99.98, 0.05, 100.0) == pytest.approx(0.03)
    # Values that queued during a long batch have waited long enough already.
    assert gather_wait(3, 8, 99.0, 0.05, 100.0) == 0.0


def test_bad_arguments_are_refused():
    app = faust.App(f"gather-bad-{next(_apps)}", store="memory://")
    with pytest.raises(ValueError, match="max_batch"):
        asyncio.run(anext(gather(app.stream([]), 0, 0.05)))


@dataclass
class Seen:
    batch: list[int]
    yielded: float
    body_done: float
    acked_in_body: list[bool]
    earlier_acked: bool
    own_events: bool
    """Whether each value came with the Kafka event it arrived in."""


async def run_agent(
    schedule: Sequence[tuple[float, int]], max_batch: int, within_s: float, hold_s: float
) -> tuple[list[Seen], float]:
    """Put each value at its time (s after start) to a gathering agent; return what it saw."""
    app = faust.App(f"gather-{next(_apps)}", store="memory://", autodiscover=False)
    events: dict[int, faust.EventT] = {}
    seen: list[Seen] = []
    done = asyncio.Event()

    @app.agent(app.channel())
    async def agent(stream: faust.StreamT) -> None:
        async for pairs in gather(stream, max_batch, within_s):
            yielded = time.monotonic()
            batch = [value for value, _ in pairs]
            own_events = all(event is events[value] for value, event in pairs)
            acked_in_body = [events[v].message.acked for v in batch]
            earlier = [v for s in seen for v in s.batch]
            earlier_acked = all(events[v].message.acked for v in earlier)
            await asyncio.sleep(hold_s)
            seen.append(
                Seen(batch, yielded, time.monotonic(), acked_in_body, earlier_acked, own_events)
            )
            if sum(len(s.batch) for s in seen) == len(schedule):
                done.set()

    async with agent.test_context() as ctx:
        start = time.monotonic()
        for at, value in schedule:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            events[value] = await ctx.put(value, wait=False)
        await asyncio.wait_for(done.wait(), 10)
    return seen, start


async def test_batches_keep_order_and_never_exceed_max_batch():
    # A long ``within``: only full batches may leave before the last value.
    seen, _ = await run_agent([(0.0, v) for v in range(7)], 3, 0.5, 0.05)
    assert [v for s in seen for v in s.batch] == list(range(7))
    assert [len(s.batch) for s in seen] == [3, 3, 1]
    assert all(s.own_events for s in seen)


async def test_a_lone_value_waits_about_within_for_company():
    seen, start = await run_agent([(0.0, 1)], 8, 0.3, 0.0)
    assert [s.batch for s in seen] == [[1]]
    assert 0.25 <= seen[0].yielded - start <= 1.0


async def test_values_that_queued_during_a_batch_are_yielded_right_after_it():
    # 2 arrives while [1] is handled (0.3 to 1.1 s) and has waited its 0.3 s by
    # the time the body returns: no second wait, unlike ``take()``.
    seen, _ = await run_agent([(0.0, 1), (0.5, 2), (0.55, 3)], 8, 0.3, 0.8)
    assert [s.batch for s in seen] == [[1], [2, 3]]
    assert seen[1].yielded - seen[0].body_done < 0.15


async def test_events_are_acked_after_their_batch_body_returns():
    seen, _ = await run_agent([(0.0, v) for v in range(5)], 2, 0.5, 0.05)
    assert len(seen) == 3
    for s in seen:
        assert s.acked_in_body == [False] * len(s.batch)
        assert s.earlier_acked


async def test_a_batch_whose_body_fails_is_not_acked():
    app = faust.App(f"gather-fail-{next(_apps)}", store="memory://", autodiscover=False)
    got: list[faust.EventT] = []
    closed = asyncio.Event()

    @app.agent(app.channel())
    async def agent(stream: faust.StreamT) -> None:
        batches = gather(stream, 2, 0.05)
        await anext(batches)
        # What ``async for`` does when its body raises: the generator is closed.
        await batches.aclose()
        closed.set()

    async with agent.test_context() as ctx:
        got.append(await ctx.put(1, wait=False))
        got.append(await ctx.put(2, wait=False))
        await asyncio.wait_for(closed.wait(), 10)
        assert [e.message.acked for e in got] == [False, False]
