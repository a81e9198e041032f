"""What `create_app` declares and every flow's ``register`` reads: topics, tables, the sink.

A flow registers its agents from one `Wiring`, the `Runtime` and the
settings; its per-batch function gets the worker's `EventTable` and
`ProducerSink` (the `streams.worker.sink` protocols over Faust).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import faust
from aiokafka import AIOKafkaConsumer
from faust.types import EventT, TableT

from streams.connection import aiokafka_options
from streams.settings import KafkaSettings
from streams.topics import AppTables, AppTopics, Table
from streams.worker.faust_ext.current_event import acting_for
from streams.worker.faust_ext.delivery import deliver
from streams.worker.metrics import WorkerMetrics
from streams.worker.sink import Received, Record, SendDeadLetter
from streams.worker.tables import bytes_table

log = logging.getLogger(__name__)


def whole_topic_consumer(kafka: KafkaSettings, topic: str) -> AIOKafkaConsumer:
    """Return a consumer of every partition of ``topic`` from its start, outside any group.

    Every worker follows the items and the traffic shares whole, whichever
    partitions its group assigned it.
    """
    return AIOKafkaConsumer(
        topic,
        **aiokafka_options(kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


class SharesHolder:
    """Current traffic shares of this worker's scorer, kept at the newest published ones."""

    def __init__(self, initial: Mapping[str, float]) -> None:
        self.shares: dict[str, float] = dict(initial)


@dataclass(frozen=True)
class Sources:
    """The topics the agents read, as Faust topics of undecoded bytes."""

    events: faust.TopicT
    scoring: faust.TopicT
    offers_and_purchases: faust.TopicT
    """Both keyed by user, read by one agent: each user's offers and purchases in order."""
    experiment_events: faust.TopicT


class Tables:
    """The app's Faust tables, each declared on first use.

    A worker without the scorer uses only ``user_state``: the scorer's tables
    are never declared there, so Faust neither assigns nor recovers their
    changelogs.
    """

    def __init__(self, app: faust.App, declared: AppTables, kafka: KafkaSettings) -> None:
        self._app, self._declared, self._kafka = app, declared, kafka

    def _declare(self, table: Table) -> TableT:
        return bytes_table(self._app, table.name, table.partitions(self._kafka))

    @cached_property
    def user_state(self) -> TableT:
        """Each user's state (key user_id)."""
        return self._declare(self._declared.user_state)

    @cached_property
    def shown_prices(self) -> TableT:
        """Each user's last shown prices (key user_id)."""
        return self._declare(self._declared.shown_prices)

    @cached_property
    def last_offers(self) -> TableT:
        """Each user's latest offers, for attribution (key user_id)."""
        return self._declare(self._declared.last_offers)

    @cached_property
    def arm_stats(self) -> TableT:
        """Each pricing arm's counters (key arm, one partition)."""
        return self._declare(self._declared.arm_stats)


class EventTable:
    """A Faust table read and written in the partition of each key's event (`acting_for`)."""

    def __init__(
        self, app: faust.App, table: TableT, written: Callable[[], None] = lambda: None
    ) -> None:
        self._app, self._table = app, table
        self._written = written
        """Called once per value stored (`WorkerMetrics.table_writer`)."""

    def get(self, key: str, via: EventT) -> bytes | None:
        """Return the stored value of ``key``, None when there is none."""
        with acting_for(via):
            value: bytes | None = self._table.get(key)
        return value

    def set(self, key: str, value: bytes, via: EventT) -> None:
        """Store ``value`` under ``key``."""
        with acting_for(via):
            self._table[key] = value
        self._written()

    async def flush(self) -> None:
        """Return once every value stored so far is in the changelog (the app's producer)."""
        await self._app.producer.flush()


class ProducerSink:
    """The worker's sink: records through the app's producer, dead letters to the DLQ."""

    def __init__(self, app: faust.App, dead_letter: SendDeadLetter) -> None:
        self._app = app
        self.dead_letter_at = dead_letter
        """The same dead-lettering for a record that is not a Faust event (the catalogue's)."""

    async def send(self, records: Sequence[Record]) -> None:
        """Send every record; return once the broker has acknowledged them all."""
        await deliver(self._app, records)

    async def dead_letter(self, received: Received, reason: str) -> None:
        """Send ``received``'s original bytes, where it was read and ``reason`` to the DLQ."""
        message = received.message
        await self.dead_letter_at(
            message.topic, message.partition, message.offset, received.value, reason
        )


@dataclass(frozen=True)
class Wiring:
    """What the flows share: names, the topics they read, tables, sink, live shares, metrics."""

    topics: AppTopics
    sources: Sources
    tables: Tables
    sink: ProducerSink
    shares: SharesHolder
    metrics: WorkerMetrics
