"""Helpers for tests on the real broker: isolated pipelines and worker processes."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import orjson

from streams.offline.kafka_io import Refusal, producer, send_log
from streams.offline.local import spawn_worker
from streams.offline.replay import LogRecord
from streams.settings import Settings, TopicNames
from streams.topics import AppTopics, Topic, create_topics

# The same variable deploy/broker.sh reads, so `make test PORT=...` moves both.
BOOTSTRAP = f"127.0.0.1:{os.environ.get('RECPRICE_BROKER_PORT', '19092')}"


def records(objs: list[object], key_field: str = "user_id") -> list[LogRecord]:
    out = []
    for n, obj in enumerate(objs, start=1):
        raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        key = obj.get(key_field) if isinstance(obj, dict) else None
        ts = obj.get("ts") if isinstance(obj, dict) else None
        out.append(
            LogRecord(
                n,
                raw,
                key.encode() if isinstance(key, str) else None,
                ts if isinstance(ts, int) else None,
            )
        )
    return out


@dataclass
class Pipeline:
    """One isolated deployment: its own topic prefix, consumer group and data dirs."""

    bootstrap: str
    model_dir: Path | None
    root: Path
    prefix: str = field(default_factory=lambda: f"it-{uuid.uuid4().hex[:10]}-")
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kafka: dict[str, int | float | str] = field(default_factory=dict)
    """Kafka settings beyond the bootstrap (partitions, replication...), for topics and workers."""

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka={"bootstrap": self.bootstrap, **self.kafka}, topics=TopicNames(prefix=self.prefix)
        )

    @property
    def topics(self) -> AppTopics:
        return AppTopics.of(self.settings)

    def create(self) -> None:
        create_topics(self.settings)

    def send(self, topic: Topic, objs: list[object], key_field: str = "user_id") -> None:
        self._send_all(topic, records(objs, key_field))

    def send_raw(self, topic: Topic, payloads: list[tuple[bytes | None, bytes]]) -> None:
        self._send_all(
            topic, [LogRecord(n, value, key, None) for n, (key, value) in enumerate(payloads, 1)]
        )

    def _send_all(self, topic: Topic, log: list[LogRecord]) -> None:
        refusals: list[Refusal] = []
        summary = send_log(partial(producer, self.bootstrap), topic.name, log, refusals.append)
        assert not refusals and summary.sent == len(log), refusals

    def start_worker(
        self, data_dir: str = "worker-data", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a worker process with its own log file; ``env`` adds RECPRICE__ settings."""
        base = {
            "RECPRICE__KAFKA__BOOTSTRAP": self.bootstrap,
            "RECPRICE__KAFKA__PARTITIONS": "4",
            "RECPRICE__TOPICS__PREFIX": self.prefix,
            "RECPRICE__WORKER__DATA_DIR": str(self.root / data_dir),
            "RECPRICE__SCORER__MAX_WAIT_S": "0.02",
            "RECPRICE__EXPERIMENT__BANDIT_INTERVAL_S": "0.5",
        }
        base |= {f"RECPRICE__KAFKA__{k.upper()}": str(v) for k, v in self.kafka.items()}
        if self.model_dir is not None:  # None: the real pre-trained MiniLM
            base["RECPRICE__ENCODER__MODEL_DIR"] = str(self.model_dir)
            base["RECPRICE__ENCODER__CPU_THREADS"] = "1"
        log = self.root / f"worker-{len(self.workers) + 1}.log"
        proc = spawn_worker({**base, **(env or {})}, log)
        self.workers.append(proc)
        return proc

    def log(self, tail_chars: int = 4000) -> str:
        """The end of every worker's log, one section per worker."""
        parts = []
        for n in range(1, len(self.workers) + 1):
            path = self.root / f"worker-{n}.log"
            text = path.read_text(errors="replace")[-tail_chars:] if path.exists() else ""
            parts.append(f"--- worker {n} ({path}) ---\n{text}")
        return "\n".join(parts)
