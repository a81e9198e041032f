"""An isolated deployment on a broker: topics, workers and their outputs, for tests and benchmarks.

A deployment is the app's topics under a prefix of its own (so its consumer
group and table changelogs are its own too), the worker processes started on
them with their data directories and logs under one root folder, and the
reads and waits that check what the workers did. The integration tests
(``tests/kafka_support.py``) and the Kafka benchmarks (``bench/``) both use it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError

from streams.connection import kafka_python_options
from streams.offline.kafka_io import Refusal, producer, send_log
from streams.offline.local import spawn_worker, stop_worker
from streams.offline.replay import LogRecord
from streams.settings import Settings, TopicNames
from streams.topics import AppTopics, Topic, create_topics

KafkaValue = int | float | str


def unique_prefix(tag: str) -> str:
    """Return a topic prefix no other deployment uses: ``<tag>-<10 hex digits>-``."""
    return f"{tag}-{uuid.uuid4().hex[:10]}-"


def json_log(objs: Iterable[object], key_field: str = "user_id") -> list[LogRecord]:
    """Turn JSON objects (or raw bytes) into numbered log lines, keyed and timed as replays do."""
    return [
        LogRecord.of(n, obj if isinstance(obj, bytes) else orjson.dumps(obj), key_field)
        for n, obj in enumerate(objs, start=1)
    ]


@dataclass
class Deployment:
    """The app's topics under a unique prefix, and the worker processes started on them."""

    bootstrap: str
    root: Path
    """Folder of the workers' data directories and logs."""
    prefix: str = field(default_factory=lambda: unique_prefix("dep"))
    kafka: dict[str, KafkaValue] = field(default_factory=dict)
    """Kafka settings beyond the bootstrap (partitions, replication, security...), for topics,
    workers and every client of the deployment."""
    worker_env: dict[str, str] = field(default_factory=dict)
    """``RECPRICE__`` settings every worker of this deployment starts with."""
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """The workers running; a test or benchmark that kills one removes it."""
    logs: list[Path] = field(default_factory=list)
    """The log file of every worker started, in order."""
    _offsets: KafkaConsumer | None = field(default=None, repr=False)

    @cached_property
    def settings(self) -> Settings:
        """Settings of this deployment (what its workers read from their environment).

        Built once: a paced sender naming its topic per event would otherwise take
        CPU from the worker it measures (bench/RESULTS.md, "How each figure is
        measured").
        """
        return Settings(
            kafka={"bootstrap": self.bootstrap, **self.kafka},
            topics=TopicNames(prefix=self.prefix),
        )

    @cached_property
    def topics(self) -> AppTopics:
        """The app's topics under this deployment's prefix."""
        return AppTopics.of(self.settings)

    def create(self) -> None:
        """Create every topic and changelog with the configured partitions."""
        create_topics(self.settings)

    def send(self, topic: Topic, objs: Iterable[object], key_field: str = "user_id") -> int:
        """Produce JSON objects as :func:`json_log` keys and times them; return how many."""
        return self.send_log(topic, json_log(objs, key_field))

    def send_raw(self, topic: Topic, payloads: Sequence[tuple[bytes | None, bytes]]) -> int:
        """Produce (key, value) pairs as they are, untimed; return how many."""
        log = [LogRecord(n, value, key, None) for n, (key, value) in enumerate(payloads, 1)]
        return self.send_log(topic, log)

    def send_log(self, topic: Topic, log: Sequence[LogRecord]) -> int:
        """Produce ``log`` as ``recprice replay`` does; raise if Kafka refused any record."""
        refusals: list[Refusal] = []
        summary = send_log(partial(producer, self.settings.kafka), topic.name, log, refusals.append)
        if refusals or summary.sent != len(log):
            raise RuntimeError(f"{summary.line()}: {', '.join(map(str, refusals))}")
        return summary.sent

    def start_worker(
        self, data_dir: str = "worker-data", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``recprice worker`` with its own log; ``env`` adds ``RECPRICE__`` settings."""
        base = {
            **self.kafka_env(),
            "RECPRICE__TOPICS__PREFIX": self.prefix,
            "RECPRICE__WORKER__DATA_DIR": str(self.root / data_dir),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"worker-{len(self.logs) + 1}.log"
        proc = spawn_worker({**base, **self.worker_env, **(env or {})}, log)
        self.workers.append(proc)
        self.logs.append(log)
        return proc

    def kafka_env(self) -> dict[str, str]:
        """``RECPRICE__KAFKA__*`` variables of this deployment's broker, layout and security."""
        env = {
            "RECPRICE__KAFKA__BOOTSTRAP": self.bootstrap,
            "RECPRICE__KAFKA__PARTITIONS": str(self.settings.kafka.partitions),
        }
        return env | {f"RECPRICE__KAFKA__{k.upper()}": str(v) for k, v in self.kafka.items()}

    def log(self, tail_chars: int = 4000) -> str:
        """Return the end of every worker's log, one section per worker started."""
        parts = []
        for n, path in enumerate(self.logs, start=1):
            text = path.read_text(errors="replace")[-tail_chars:] if path.exists() else ""
            parts.append(f"--- worker {n} ({path}) ---\n{text}")
        return "\n".join(parts)

    def count(self, topic: Topic) -> int:
        """Count the records in ``topic`` (its end offsets: our topics are never trimmed)."""
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
        """Return the app group's committed offset of each partition of ``topic`` (0: none)."""
        group = self.settings.app_id
        admin = self._admin()
        try:
            done = admin.list_group_offsets({group: self._partitions(topic)}).get(group, {})
        finally:
            admin.close()
        return {tp: max(done[tp].offset, 0) if tp in done else 0 for tp in self._partitions(topic)}

    def consumed(self, topic: Topic) -> int:
        """Count the records of ``topic`` the app has consumed and committed (from offset 0)."""
        return sum(self.committed(topic).values())

    def wait_consumed(self, topic: Topic, timeout_s: float) -> bool:
        """Poll until the app's consumer group has committed every record of ``topic``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ends = self._end_offsets(topic)
            try:
                done = self.committed(topic)
            except CoordinatorNotAvailableError:
                # A fresh broker creates its offsets topic on the first group request.
                done = {}
            if done and all(done[tp] >= end for tp, end in ends.items()):
                return True
            self._check_workers()
            time.sleep(0.5)
        return False

    def read(self, topic: Topic) -> list[tuple[int, dict[str, object]]]:
        """Every record of a topic as (broker timestamp ms, JSON object)."""
        consumer = KafkaConsumer(
            **kafka_python_options(self.settings.kafka), group_id=None, enable_auto_commit=False
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

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL if one hangs)."""
        for proc in self.workers:
            stop_worker(proc)
        self.workers = []

    def close(self) -> None:
        """Stop the workers and delete every topic under the prefix (changelogs included)."""
        self.stop_workers()
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
        admin = self._admin()
        try:
            ours = [t for t in admin.list_topics() if t.startswith(self.prefix)]
            if ours:
                admin.delete_topics(ours)
        finally:
            admin.close()

    def _admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            **kafka_python_options(self.settings.kafka), client_id="recprice-deployment"
        )

    def _partitions(self, topic: Topic) -> list[TopicPartition]:
        return [TopicPartition(topic.name, p) for p in range(topic.partitions(self.settings.kafka))]

    def _end_offsets(self, topic: Topic) -> dict[TopicPartition, int]:
        # One long-lived client: a new one per poll would cost the worker CPU it
        # is being measured on.
        if self._offsets is None:
            self._offsets = KafkaConsumer(
                **kafka_python_options(self.settings.kafka), group_id=None
            )
        return dict(self._offsets.end_offsets(self._partitions(topic)))

    def _check_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}):\n{self.log()}")
