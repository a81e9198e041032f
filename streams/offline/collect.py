"""Reading output topics until a condition holds (demo and integration tests)."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.connection import kafka_python_options
from streams.settings import KafkaSettings


class TopicCollector:
    """Reads several topics from the beginning, without a consumer group."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self.records: dict[str, list[dict[str, object]]] = {t: [] for t in topics}
        self._consumer = KafkaConsumer(
            **kafka_python_options(kafka), enable_auto_commit=False, group_id=None
        )
        tps = []
        for topic in topics:
            partitions = self._consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)

    def poll(self, timeout_s: float = 0.5) -> int:
        """Fetch what is there; return how many records arrived."""
        got = 0
        for tp, messages in self._consumer.poll(timeout_ms=int(timeout_s * 1000)).items():
            for message in messages:
                self.records[tp.topic].append(orjson.loads(message.value))
                got += 1
        return got

    def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Poll until ``done()`` or the timeout; return whether ``done()`` held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if done():
                return True
        return done()

    def close(self) -> None:
        """Release the consumer."""
        self._consumer.close()


def latest_recommendations(records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Each user's recommendation on the newest state version seen."""
    latest: dict[str, dict[str, object]] = {}
    for record in records:
        user = str(record["user_id"])
        version = int(record["state_version"])  # type: ignore[call-overload]
        if user not in latest or version >= int(latest[user]["state_version"]):  # type: ignore[call-overload]
            latest[user] = record
    return latest
