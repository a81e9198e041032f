"""Topic layout on the real broker: replayed event times must not fragment the events log."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from streams.offline.deployment import json_log
from streams.offline.kafka_io import producer, send_log
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

DAY_MS = 24 * 3600 * 1000


def most_segments(bootstrap: str, topic: str) -> int:
    """The most segment files the broker keeps for one of ``topic``'s partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="recprice-test-segments")
    try:
        log_dir = admin.describe_log_dirs()[0]["log_dirs"][0]["log_dir"]
    finally:
        admin.close()
    return max(len(list(part.glob("*.log"))) for part in Path(log_dir).glob(f"{topic}-[0-9]*"))


def test_a_replay_of_five_weeks_of_events_stays_in_one_segment_with_its_timestamps(
    bootstrap: str, tmp_path: Path
):
    pipe = Pipeline(bootstrap, None, tmp_path)
    pipe.create()
    start = 880_000_000_000  # 1997, like MovieLens
    days = 35
    events = [
        {
            "event_id": f"e{d}",
            "type": "click",
            "user_id": "u1",
            "item_id": "i1",
            "ts": start + d * DAY_MS,
        }
        for d in range(days)
    ]
    # One flush per simulated day: the broker sees a separate append each time,
    # which is when it decides whether to roll a segment.
    connect = partial(producer, pipe.settings.kafka)
    refusals: list[object] = []
    sent = 0
    for record in json_log(events):
        sent += send_log(connect, pipe.topics.events.name, [record], refusals.append).sent
        # A topic with Kafka's default roll time, as the control.
        sent += send_log(connect, pipe.topics.recommendations.name, [record], refusals.append).sent
    assert refusals == [] and sent == 2 * days

    # The control shows the broker really rolls on event time (every 7 days)...
    assert most_segments(bootstrap, pipe.topics.recommendations.name) >= days // 7
    # ...and the events topic does not, so a consumer reads it in long fetches.
    assert most_segments(bootstrap, pipe.topics.events.name) == 1

    # The original event times are kept on the records (DESIGN: replay keeps them).
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10_000)
    partitions = [
        TopicPartition(pipe.topics.events.name, p)
        for p in consumer.partitions_for_topic(pipe.topics.events.name)
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    stamps = sorted(record.timestamp for record in consumer)
    consumer.close()
    assert stamps == [e["ts"] for e in events]
