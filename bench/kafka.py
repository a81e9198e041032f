"""An isolated deployment on the broker for one benchmark: own prefix, group, data dir."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from streams.offline.local import spawn_worker, stop_worker
from streams.records.inputs import Item
from streams.settings import Settings, TopicNames
from streams.topics import AppTopics, Topic, create_topics


@dataclass
class Deployment:
    """Topics under a unique prefix and the worker processes started on them."""

    bootstrap: str
    root: Path
    partitions: int = 4
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:10]}-")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _offsets: KafkaConsumer | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        """Settings of this deployment (what its workers read from the environment).

        Built once: reading the environment costs CPU that a paced sender naming
        its topic per event would take from the worker it measures (bench/RESULTS.md,
        "How each figure is measured").
        """
        return Settings(
            kafka={"bootstrap": self.bootstrap, "partitions": self.partitions},
            topics=TopicNames(prefix=self.prefix),
        )

    @cached_property
    def topics(self) -> AppTopics:
        """The app's topics under this deployment's prefix."""
        return AppTopics.of(self.settings)

    def create(self) -> None:
        """Create every topic with the configured partitions."""
        create_topics(self.settings)

    def send(self, topic: Topic, records: Iterable[tuple[bytes, bytes, int | None]]) -> int:
        """Produce (key, value, ts) records as fast as the client goes; return how many."""
        prod = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5, batch_size=256 * 1024)
        futures = [prod.send(topic.name, key=k, value=v, timestamp_ms=ts) for k, v, ts in records]
        prod.flush()
        prod.close()
        for future in futures:
            future.get(timeout=30)
        return len(futures)

    def send_items(self, items: Iterable[Item]) -> int:
        """Produce catalogue items keyed by item id."""
        return self.send(
            self.topics.items,
            ((i.item_id.encode(), orjson.dumps(i.to_dict()), None) for i in items),
        )

    def start_worker(self, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Spawn ``recprice worker`` on this deployment."""
        env = {
            "RECPRICE__KAFKA__BOOTSTRAP": self.bootstrap,
            "RECPRICE__KAFKA__PARTITIONS": str(self.partitions),
            "RECPRICE__TOPICS__PREFIX": self.prefix,
            "RECPRICE__WORKER__DATA_DIR": str(self.root / "worker-data"),
            **extra_env,
        }
        self.root.mkdir(parents=True, exist_ok=True)
        proc = spawn_worker(env, self.root / "worker.log")
        self.workers.append(proc)
        return proc

    def log_tail(self) -> str:
        """The end of the workers' log, for error messages."""
        path = self.root / "worker.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _partitions(self, topic: Topic) -> list[TopicPartition]:
        return [TopicPartition(topic.name, p) for p in range(self.partitions)]

    def _end_offsets(self, topic: Topic) -> dict[TopicPartition, int]:
        # One long-lived client: a new one per poll would cost the worker CPU it
        # is being measured on.
        if self._offsets is None:
            self._offsets = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        return dict(self._offsets.end_offsets(self._partitions(topic)))

    def _check_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}):\n{self.log_tail()}")

    def count(self, topic: Topic) -> int:
        """Records in a topic (sum of end offsets; our topics are never compacted or trimmed)."""
        return sum(self._end_offsets(topic).values())

    def wait_count(self, topic: Topic, target: int, timeout_s: float) -> int:
        """Poll until ``topic`` holds ``target`` records or the time is up; return the count."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.count(topic)
            if got >= target or time.monotonic() > deadline:
                return got
            self._check_workers()
            time.sleep(0.5)

    def committed(self, topic: Topic) -> dict[TopicPartition, int]:
        """The app's consumer group's committed offset of each partition of ``topic`` (0: none)."""
        group = self.settings.app_id
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="recprice-bench")
        try:
            done = admin.list_group_offsets({group: self._partitions(topic)}).get(group, {})
        finally:
            admin.close()
        return {tp: max(done[tp].offset, 0) if tp in done else 0 for tp in self._partitions(topic)}

    def consumed(self, topic: Topic) -> int:
        """Records of ``topic`` the app has consumed and committed (from offset 0 on)."""
        return sum(self.committed(topic).values())

    def wait_consumed(self, topic: Topic, timeout_s: float) -> bool:
        """Poll until the app's consumer group has committed every record of ``topic``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ends = self._end_offsets(topic)
            done = self.committed(topic)
            if all(done[tp] >= end for tp, end in ends.items()):
                return True
            self._check_workers()
            time.sleep(0.5)
        return False

    def read(self, topic: Topic) -> list[tuple[int, dict[str, object]]]:
        """Every record of a topic as (broker timestamp ms, JSON object)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        try:
            tps = self._partitions(topic)
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            out: list[tuple[int, dict[str, object]]] = []
            deadline = time.monotonic() + 60
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"reading {topic.name} timed out")
                for messages in consumer.poll(timeout_ms=500).values():
                    out += [(m.timestamp, orjson.loads(m.value)) for m in messages]
            return out
        finally:
            consumer.close()

    def close(self) -> None:
        """Stop the workers and delete every topic under the prefix (changelogs included)."""
        for proc in self.workers:
            stop_worker(proc)
        self.workers = []
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="recprice-bench")
        try:
            ours = [t for t in admin.list_topics() if t.startswith(self.prefix)]
            if ours:
                admin.delete_topics(ours)
        finally:
            admin.close()
