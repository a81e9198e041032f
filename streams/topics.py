"""Explicit topic creation: every topic with the configured partitions.

Auto-created topics would get the broker's default partition count and break
co-partitioning of ``events`` and ``scoring-requests``.
"""

from __future__ import annotations

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

# Compacted: items are a table keyed by item_id; the newest version wins.
COMPACTED = {"cleanup.policy": "compact"}
KEEP_FOREVER = {"retention.ms": "-1"}


def topic_specs(settings: Settings) -> dict[str, dict[str, object]]:
    """Name -> create options of every topic the app reads or writes."""
    kafka = settings.kafka
    specs: dict[str, dict[str, object]] = {}
    for field in ("events", "items", "recommendations", "price_updates", "dlq", "scoring"):
        specs[settings.topics.name(field)] = {
            "num_partitions": kafka.partitions,
            "replication_factor": kafka.replication,
            "configs": dict(COMPACTED if field == "items" else KEEP_FOREVER),
        }
    return specs


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
