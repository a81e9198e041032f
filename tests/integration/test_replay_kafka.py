"""``recprice replay`` and ``produce --file`` on the real broker: bad lines never stop a log."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

TWO_MB = 2 * 1024 * 1024
HOUR_MS = 3600 * 1000


def recprice(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def values(bootstrap: str, topic: str) -> list[dict[str, object]]:
    """Every record of ``topic`` from the beginning (in order within each partition)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        consumer.seek_to_beginning()
        return [orjson.loads(message.value) for message in consumer]
    finally:
        consumer.close()


def refuse_timestamps_an_hour_ahead(bootstrap: str, topic: str) -> None:
    """Pin the broker's refusal of future timestamps on ``topic``, whatever its defaults."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="recprice-test-replay")
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    configs={"message.timestamp.after.max.ms": str(HOUR_MS)},
                )
            ]
        )
    finally:
        admin.close()


def test_replay_sends_every_record_around_one_too_large_and_one_the_broker_refuses(
    bootstrap: str, tmp_path: Path
):
    pipe = Pipeline(bootstrap, None, tmp_path)
    pipe.create()
    refuse_timestamps_an_hour_ahead(bootstrap, pipe.topics.events.name)
    now = int(time.time() * 1000)
    events = [
        {"event_id": f"e{i}", "type": "click", "user_id": f"u{i % 7}", "item_id": "i1", "ts": now}
        for i in range(1, 301)
    ]
    events[99]["pad"] = "x" * TWO_MB  # line 100: larger than the producer's max_request_size
    events[199]["ts"] = now + 2 * HOUR_MS  # line 200: a time the broker refuses
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))

    result = recprice("replay", str(log), "--bootstrap", bootstrap, "--prefix", pipe.prefix)

    assert result.returncode == 1, result.stderr
    assert "line 100 skipped: [Error 10] MessageSizeTooLargeError" in result.stderr
    assert "line 200 failed: [Error 32] InvalidTimestampError" in result.stderr
    assert result.stdout.startswith("sent 298, failed 1, skipped 1, "), result.stdout
    got = values(bootstrap, pipe.topics.events.name)
    sent = [e for e in events if e["event_id"] not in {"e100", "e200"}]
    assert sorted(e["event_id"] for e in got) == sorted(e["event_id"] for e in sent)
    # Each user's events keep the log's order (a user is one partition).
    for user in {e["user_id"] for e in events}:
        assert [e["event_id"] for e in got if e["user_id"] == user] == [
            e["event_id"] for e in sent if e["user_id"] == user
        ]


def test_produce_file_sends_every_item_around_a_keyless_and_a_too_large_one(
    bootstrap: str, tmp_path: Path
):
    pipe = Pipeline(bootstrap, None, tmp_path)
    pipe.create()
    lines = [orjson.dumps({"item_id": f"i{k}", "title": f"Item {k}"}) for k in range(1, 41)]
    lines[9] = b'{"title": "no item_id: the compacted items topic refuses it"}'
    lines[29] = orjson.dumps({"item_id": "i30", "title": "x" * TWO_MB})
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = recprice(
        "produce", "--topic", "items", "--file", str(path), "--bootstrap", bootstrap,
        "--prefix", pipe.prefix,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    assert "line 10 failed: [Error 87] InvalidRecordError" in result.stderr
    assert "line 30 skipped: [Error 10] MessageSizeTooLargeError" in result.stderr
    assert result.stdout.startswith("sent 38, failed 1, skipped 1, "), result.stdout
    got = sorted(item["item_id"] for item in values(bootstrap, pipe.topics.items.name))
    assert got == sorted(f"i{k}" for k in range(1, 41) if k not in (10, 30))
