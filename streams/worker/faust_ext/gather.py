"""Micro-batches whose wait starts when their first value arrives.

Faust's ``Stream.take(max_, within)`` stops adding values while the caller
handles a batch, then waits ``within`` again, even for values that queued up
during that batch and have already waited for all of it. On the scorer that
idle window came on top of every forward pass at half load.

:func:`gather` keeps adding values (up to ``max_batch``) while the caller
handles the previous batch, and yields a batch as soon as it is full or its
oldest value has waited ``within``. Each value comes with its Kafka event, so
the caller can act for that event's partition (`streams.worker.faust_ext.current_event`).
Like ``take()``, it acks a batch's events only when the caller asks for the
next batch, so nothing is committed before the loop body that handled it has
returned (at-least-once); unlike ``take()`` it does not ack a batch whose
body raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.types import ChannelT, EventT


def gather_wait(
    buffered: int, max_batch: int, oldest_s: float | None, within_s: float, now_s: float
) -> float | None:
    """Seconds to wait before yielding what is buffered: 0 = now, None = until a value comes."""
    if buffered == 0 or oldest_s is None:
        return None
    if buffered >= max_batch:
        return 0.0
    return max(oldest_s + within_s - now_s, 0.0)


async def gather(
    agent_stream: faust.StreamT, max_batch: int, within_s: float
) -> AsyncIterator[list[tuple[Any, EventT]]]:
    """Yield lists of at most ``max_batch`` (value, event) pairs; the module docstring says when."""
    if max_batch < 1 or within_s < 0:
        raise ValueError(f"need max_batch >= 1 and within_s >= 0, got {max_batch}, {within_s}")
    # The same Stream internals as Faust's own take(): a processor, passive draining.
    stream = cast(faust.Stream, agent_stream)
    loop = asyncio.get_running_loop()
    values: list[Any] = []
    events: list[EventT] = []
    oldest: float | None = None
    arrived = asyncio.Event()
    room = asyncio.Event()

    async def add(value: Any) -> Any:
        nonlocal oldest
        event = stream.current_event
        if event is None:
            raise RuntimeError("gather: a value arrived without its Kafka event")
        # Back-pressure: the stream stops draining its channel until a batch is taken.
        while len(values) >= max_batch:
            if stream.should_stop:
                # Never buffered, never acked: Kafka delivers it again after a restart.
                return value
            room.clear()
            await stream.wait(room)  # type: ignore[arg-type]
        if not values:
            oldest = loop.time()
        values.append(value)
        events.append(event)
        arrived.set()
        return value

    acks = stream.enable_acks
    # The stream must not ack a value when ``add`` returns: gather acks after the batch.
    stream.enable_acks = False
    stream.add_processor(add)
    stream._enable_passive(cast(ChannelT, aiter(stream.channel)))
    try:
        while not stream.should_stop:
            delay = gather_wait(len(values), max_batch, oldest, within_s, loop.time())
            if delay != 0.0:
                arrived.clear()
                await stream.wait_for_stopped(arrived, timeout=delay)  # type: ignore[arg-type]
                continue
            taken = events[:]
            batch = list(zip(values, taken, strict=True))
            values.clear()
            events.clear()
            oldest = None
            room.set()
            yield batch
            for event in taken:
                await stream.ack(event)
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
