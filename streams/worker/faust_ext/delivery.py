"""Sending a batch's output records through the app's producer and waiting for the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import faust


async def deliver(app: faust.App, records: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Send every ``(topic, key, value)`` and return once the broker has acknowledged them all.

    The app's producer directly (partitioned by key, as ``Topic.send`` would)
    costs a fraction of ``Topic.send`` per record. An agent that awaits this
    before its batch is acked keeps delivery at-least-once.
    """
    producer = app.producer
    delivered = [
        await producer.send(topic, key, value, None, None, None) for topic, key, value in records
    ]
    await asyncio.gather(*delivered)
