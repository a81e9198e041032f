"""Explicit topic creation: every topic with the configured partitions.

Auto-created topics would get the broker's default partition count and break
co-partitioning of ``events`` and ``scoring-requests``.
"""

from __future__ import annotations

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from streams.settings import KafkaSettings, Settings

# Compacted: items are a table keyed by item_id; the newest version wins.
COMPACTED = {"cleanup.policy": "compact"}
KEEP_FOREVER = {"retention.ms": "-1"}
# Kafka rolls a segment once the record timestamps in it span segment.ms (7 days
# by default). Replays keep the original event times, so replaying months of
# history in seconds rolls a segment for every simulated week; a fetch stops at a
# segment's end, and Faust's consumer lost about 0.1 s at each (a Faust agent that
# does nothing read a MovieLens replay at 4.9k instead of 13k events/s). The
# events topic is kept forever, so time-based rolls buy nothing there: it rolls
# by size only.
EVENT_TIME_SEGMENTS = {"segment.ms": str(100 * 365 * 24 * 3600 * 1000)}
# Share snapshots are kept, not compacted: their history is the bandit's audit trail.
COMPACTED_TOPICS = frozenset({"items"})
SINGLE_PARTITION = frozenset({"experiment_events", "experiment_shares"})
# Tables by name -> whether they live on one partition (changelogs are compacted,
# never time-retained: recovery from a retention-trimmed changelog goes wrong).
TABLES = {"user_state": False, "shown_prices": False, "last_offers": False, "arm_stats": True}


def topic_specs(settings: Settings) -> dict[str, dict[str, object]]:
    """Name -> create options of every topic the app reads or writes."""
    kafka = settings.kafka
    replicas = replica_configs(kafka)
    specs: dict[str, dict[str, object]] = {}
    fields = (
        "events",
        "items",
        "recommendations",
        "price_updates",
        "dlq",
        "scoring",
        "purchases",
        "offers",
        "audit",
        "outcomes",
        "experiment_events",
        "experiment_shares",
    )
    for field in fields:
        # One partition: a single worker must own every arm's counters.
        single = field in SINGLE_PARTITION
        specs[settings.topics.name(field)] = {
            "num_partitions": 1 if single else kafka.partitions,
            "replication_factor": kafka.replication,
            "configs": {**topic_configs(field), **replicas},
        }
    for table, single in TABLES.items():
        # Faust would create these itself, but a just-created topic can be
        # missing from its metadata for a moment, which crashes the agent
        # that first writes the table (PartitionsMismatch with 0 partitions).
        specs[changelog_topic(settings, table)] = {
            "num_partitions": 1 if single else kafka.partitions,
            "replication_factor": kafka.replication,
            "configs": {**COMPACTED, **replicas},
        }
    return specs


def topic_configs(field: str) -> dict[str, str]:
    """Topic-level configs of one of the app's topics (by settings field name)."""
    if field in COMPACTED_TOPICS:
        return dict(COMPACTED)
    if field == "events":
        return {**KEEP_FOREVER, **EVENT_TIME_SEGMENTS}
    return dict(KEEP_FOREVER)


def replica_configs(kafka: KafkaSettings) -> dict[str, str]:
    """Topic-level configs of every replicated topic: our min.insync.replicas."""
    if kafka.replication == 1:
        return {}  # the broker's default (1) already holds
    return {"min.insync.replicas": str(kafka.min_insync_replicas)}


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{settings.app_id}-{table}-changelog"


def create_topics(settings: Settings) -> list[str]:
    """Create the missing topics; return the names created (existing ones are kept)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap, client_id="recprice-admin")
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
