"""Every topic and table of the app, declared once, and their explicit creation.

`AppTopics` and `AppTables` are the one declaration that ``recprice topics
create``, the worker and the tests read: each topic's full name (from the
``RECPRICE__TOPICS__*`` settings) and how it is created. Auto-created topics
would get the broker's default partition count and break co-partitioning of
``events`` and ``scoring-requests``, so every one is created here first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from streams.connection import kafka_python_options
from streams.settings import KafkaSettings, Settings

COMPACTED = {"cleanup.policy": "compact"}
KEEP_FOREVER = {"retention.ms": "-1"}
# Kafka rolls a segment once the record timestamps in it span segment.ms (7 days
# by default). Replays keep the original event times, so replaying months of
# history in seconds rolls a segment for every simulated week; a fetch stops at a
# segment's end, and Faust's consumer lost time at each (bench/RESULTS.md, "Events
# topic rolled by size"). The events topic is kept forever, so time-based rolls buy
# nothing there: it rolls by size only.
EVENT_TIME_SEGMENTS = {"segment.ms": str(100 * 365 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class Topic:
    """One topic the app reads or writes: its full name and how it is created."""

    field: str
    """The `TopicNames` setting that names it (``RECPRICE__TOPICS__<FIELD>``)."""
    name: str
    """Full name: the settings' prefix, then that setting's value."""
    single_partition: bool = False
    """One partition, so that one worker sees every record (the experiment's counters)."""
    compacted: bool = False
    """The newest record per key wins (a table's changelog); otherwise records are kept forever."""
    event_time_segments: bool = False
    """Its records carry event times, so segments roll by size only (`EVENT_TIME_SEGMENTS`)."""

    def partitions(self, kafka: KafkaSettings) -> int:
        """Partitions to create it with."""
        return 1 if self.single_partition else kafka.partitions

    def configs(self) -> dict[str, str]:
        """Topic-level configs to create it with (replication aside)."""
        if self.compacted:
            return dict(COMPACTED)
        if self.event_time_segments:
            return {**KEEP_FOREVER, **EVENT_TIME_SEGMENTS}
        return dict(KEEP_FOREVER)


@dataclass(frozen=True)
class AppTopics:
    """The app's topics under one settings' names; each attribute is named for its setting."""

    events: Topic
    items: Topic
    recommendations: Topic
    price_updates: Topic
    dlq: Topic
    scoring: Topic
    purchases: Topic
    offers: Topic
    audit: Topic
    outcomes: Topic
    experiment_events: Topic
    experiment_shares: Topic

    @classmethod
    def of(cls, settings: Settings) -> AppTopics:
        """Declare every topic, named by ``settings.topics``."""
        names = settings.topics

        def topic(field: str, name: str, **layout: bool) -> Topic:
            return Topic(field, f"{names.prefix}{name}", **layout)

        return cls(
            events=topic("events", names.events, event_time_segments=True),
            # A table keyed by item_id: the newest version of an item wins.
            items=topic("items", names.items, compacted=True),
            recommendations=topic("recommendations", names.recommendations),
            price_updates=topic("price_updates", names.price_updates),
            dlq=topic("dlq", names.dlq),
            scoring=topic("scoring", names.scoring),
            purchases=topic("purchases", names.purchases),
            offers=topic("offers", names.offers),
            audit=topic("audit", names.audit),
            outcomes=topic("outcomes", names.outcomes),
            # One worker owns every arm's counters.
            experiment_events=topic(
                "experiment_events", names.experiment_events, single_partition=True
            ),
            # Kept, not compacted: the share history is the bandit's audit trail.
            experiment_shares=topic(
                "experiment_shares", names.experiment_shares, single_partition=True
            ),
        )

    def all(self) -> tuple[Topic, ...]:
        """Every topic, in declaration order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def named(self, field: str) -> Topic | None:
        """Return the topic of a `TopicNames` field given as text (a command line's), if any."""
        return next((t for t in self.all() if t.field == field), None)


@dataclass(frozen=True)
class Table:
    """One of the app's tables and its changelog topic (compacted, never time-retained)."""

    name: str
    """Faust's name for the table."""
    changelog: str
    """Faust's name for its changelog topic: ``<app id>-<table>-changelog``."""
    single_partition: bool = False
    """One partition, like the topic it is kept from."""

    def partitions(self, kafka: KafkaSettings) -> int:
        """Partitions of the table and its changelog."""
        return 1 if self.single_partition else kafka.partitions


@dataclass(frozen=True)
class AppTables:
    """The app's tables under one settings' app id."""

    user_state: Table
    shown_prices: Table
    last_offers: Table
    arm_stats: Table

    @classmethod
    def of(cls, settings: Settings) -> AppTables:
        """Declare every table, its changelog named under ``settings.app_id``."""

        def table(name: str, single_partition: bool = False) -> Table:
            return Table(name, f"{settings.app_id}-{name}-changelog", single_partition)

        return cls(
            user_state=table("user_state"),
            shown_prices=table("shown_prices"),
            last_offers=table("last_offers"),
            arm_stats=table("arm_stats", single_partition=True),
        )

    def all(self) -> tuple[Table, ...]:
        """Every table, in declaration order."""
        return tuple(getattr(self, f.name) for f in fields(self))


def topic_specs(settings: Settings) -> dict[str, dict[str, object]]:
    """Name -> create options of every topic the app reads or writes, changelogs included."""
    kafka = settings.kafka
    replicas = replica_configs(kafka)
    specs: dict[str, dict[str, object]] = {}
    for topic in AppTopics.of(settings).all():
        specs[topic.name] = {
            "num_partitions": topic.partitions(kafka),
            "replication_factor": kafka.replication,
            "configs": {**topic.configs(), **replicas},
        }
    for table in AppTables.of(settings).all():
        # Faust would create these itself, but a just-created topic can be
        # missing from its metadata for a moment, which crashes the agent
        # that first writes the table (PartitionsMismatch with 0 partitions).
        specs[table.changelog] = {
            "num_partitions": table.partitions(kafka),
            "replication_factor": kafka.replication,
            "configs": {**COMPACTED, **replicas},
        }
    return specs


def replica_configs(kafka: KafkaSettings) -> dict[str, str]:
    """Topic-level configs of every replicated topic: our min.insync.replicas."""
    if kafka.replication == 1:
        return {}  # the broker's default (1) already holds
    return {"min.insync.replicas": str(kafka.min_insync_replicas)}


def create_topics(settings: Settings) -> list[str]:
    """Create the missing topics; return the names created (existing ones are kept)."""
    admin = KafkaAdminClient(**kafka_python_options(settings.kafka), client_id="recprice-admin")
    try:
        existing = set(admin.list_topics())
        missing = {n: o for n, o in topic_specs(settings).items() if n not in existing}
        if missing:
            try:
                admin.create_topics(missing, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                pass  # another process created them first; their layout is ours too
        return sorted(missing)
    finally:
        admin.close()
