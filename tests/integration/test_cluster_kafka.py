"""Our topics on the local 3-node KRaft cluster: replicated, and writable with a node down."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.offline.local import LocalCluster, partition_states, wait_in_sync
from streams.settings import Settings, TopicNames
from streams.topics import AppTopics, create_topics, topic_specs

pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.timeout(300)]

RECORDS = 2000


@pytest.fixture
def settings(cluster_bootstrap: str) -> Iterator[Settings]:
    """Replicated settings on the cluster with their topics created, deleted afterwards."""
    settings = Settings(
        kafka={"bootstrap": cluster_bootstrap, "replication": 3, "min_insync_replicas": 2},
        topics=TopicNames(prefix=f"it-{uuid.uuid4().hex[:10]}-"),
    )
    created = create_topics(settings)
    yield settings
    admin = KafkaAdminClient(bootstrap_servers=cluster_bootstrap, client_id="recprice-test")
    try:
        admin.delete_topics(created)
    finally:
        admin.close()


def test_our_topics_have_three_replicas_and_their_own_min_insync_replicas(settings: Settings):
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap, client_id="recprice-test")
    try:
        names = [n for n in admin.list_topics() if n.startswith(settings.topics.prefix)]
        described = admin.describe_topics(names)
        configs = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, n, {"min.insync.replicas": None})
                for n in names
            ]
        )["topic"]
    finally:
        admin.close()
    # The data topics and the tables' changelogs.
    assert sorted(names) == sorted(topic_specs(settings))
    assert f"{settings.app_id}-user_state-changelog" in names
    for topic in described:
        for part in topic["partitions"]:
            assert sorted(part["replica_nodes"]) == [1, 2, 3], topic["name"]
            assert sorted(part["isr_nodes"]) == [1, 2, 3], topic["name"]
        min_isr = configs[topic["name"]]["min.insync.replicas"]
        # Set on the topic itself, not only inherited from the cluster's default.
        assert (min_isr["value"], min_isr["config_source"]) == ("2", "DYNAMIC_TOPIC_CONFIG")


def read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """Every value of ``topic`` from the beginning, without a consumer group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=20_000
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        for message in consumer:
            values.append(message.value)
            if len(values) == expected:
                break
        return values
    finally:
        consumer.close()


def test_with_the_events_leader_killed_acks_all_writes_go_on_and_it_rejoins_the_isr(
    local_cluster: LocalCluster, settings: Settings
):
    bootstrap = settings.kafka.bootstrap
    topic = AppTopics.of(settings).events.name
    before = wait_in_sync(settings.kafka, topic)
    # The node that leads most of the events partitions.
    victim = Counter(p.leader for p in before.values()).most_common(1)[0][0]
    local_cluster.kill_node(victim)
    try:
        prod = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=10_000,
            delivery_timeout_ms=45_000,
        )
        # Sent at once, while the cluster has yet to notice that the node is gone.
        futures = [
            prod.send(topic, value=str(n).encode(), partition=n % len(before))
            for n in range(RECORDS)
        ]
        prod.flush(timeout=60)
        for future in futures:
            future.get(timeout=0)  # raises the send's error, if any
        prod.close()
        during = partition_states(settings.kafka, topic)
        # Every partition moved away from the dead node and went on with 2 replicas in sync.
        assert all(p.leader != victim and victim not in p.in_sync for p in during.values())
        assert all(len(p.in_sync) == 2 for p in during.values())
        # Everything once: the idempotent producer's retries left no duplicates.
        values = read_all(bootstrap, topic, RECORDS)
        assert sorted(values) == sorted(str(n).encode() for n in range(RECORDS))
    finally:
        local_cluster.start_node(victim)
    after = wait_in_sync(settings.kafka, topic, timeout_s=60)
    assert all(victim in p.in_sync and len(p.in_sync) == 3 for p in after.values())
