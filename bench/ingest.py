"""Ingest through Kafka: one worker, scorer disabled, events/s of the ingest agent.

The events are produced before the worker starts, so the producer never
competes with the worker and start-up is not counted. The agent writes one
scoring request per user per batch; once the worker's group has committed
every event, the rate is the events it consumed (its committed offsets) over
the time between the first and the last request (broker timestamps). With
the scorer off the worker loads no model and keeps the catalogue's items for
ingest without embedding them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import median_by, ratio
from streams.connection import security_settings
from streams.offline.deployment import Deployment, unique_prefix
from streams.records.inputs import Event, Item
from streams.settings import KafkaSettings


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run measured."""

    events: int
    processed: int
    seconds: float
    dlq: int
    noop_events: int
    noop_seconds: float
    """The same events through a Faust agent that does nothing with them."""

    @property
    def events_per_s(self) -> float:
        """Events through the ingest agent per second."""
        return ratio(self.processed, self.seconds)

    @property
    def noop_events_per_s(self) -> float:
        """Events per second Faust alone manages on this machine (the ceiling)."""
        return ratio(self.noop_events, self.noop_seconds)


def median_round(rounds: Sequence[IngestResult]) -> IngestResult:
    """The round with the median ingest rate, beside its own no-op figure."""
    return median_by(rounds, lambda r: r.events_per_s, "ingest rounds")


def run_noop(
    dep: Deployment, topic: str, expected: int, data_dir: Path, app_id: str, timeout_s: float
) -> dict[str, float]:
    """Time :mod:`bench.noop_agent` over ``expected`` events of ``topic`` on ``dep``'s broker."""
    args = [topic, str(expected), str(data_dir), app_id]
    done = subprocess.run(
        [sys.executable, "-m", "bench.noop_agent", *args],
        env={**os.environ, **dep.kafka_env()},
        capture_output=True,
        timeout=timeout_s,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith("{")]
    if not lines:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"no-op agent failed ({done.returncode}):\n{tail}")
    return dict(orjson.loads(lines[-1]))


def run_ingest(
    kafka: KafkaSettings,
    items: Sequence[Item],
    events: Sequence[Event],
    timeout_s: float = 300.0,
    log: Callable[[str], None] = print,
) -> IngestResult:
    """Produce ``events``, start one ingest-only worker, time it through them."""
    with tempfile.TemporaryDirectory(prefix="recprice-bench-ingest-") as tmp:
        root = Path(tmp)
        dep = Deployment(
            kafka.bootstrap,
            root,
            prefix=unique_prefix("bench"),
            kafka=dict(security_settings(kafka)),
        )
        try:
            dep.create()
            dep.send(dep.topics.items, [i.to_json() for i in items], key_field="item_id")
            # Keyed by user as the contract says, with their MovieLens times, as a replay sends.
            sent = dep.send(dep.topics.events, [e.to_json() for e in events])
            log(f"  produced {sent} events; starting an ingest-only worker")
            dep.start_worker(env={"RECPRICE__SCORER__ENABLED": "false"})
            started = time.monotonic()
            if not dep.wait_consumed(dep.topics.events, timeout_s):
                raise RuntimeError(f"ingest did not finish in {timeout_s:.0f} s:\n{dep.log()}")
            requests = dep.read(dep.topics.scoring)
            if not requests:
                raise RuntimeError(f"ingest produced nothing:\n{dep.log()}")
            processed = dep.consumed(dep.topics.events)
            stamps = [ts for ts, _ in requests]
            first, last = min(stamps), max(stamps)
            dlq = dep.count(dep.topics.dlq)
            log(
                f"  {processed}/{sent} events in {(last - first) / 1000:.1f} s, "
                f"{len(requests)} scoring requests "
                f"(worker up {time.monotonic() - started:.0f} s), dlq {dlq}"
            )
            dep.stop_workers()
            noop = run_noop(
                dep,
                dep.topics.events.name,
                sent,
                root / "noop-data",
                f"{dep.prefix}noop",
                timeout_s,
            )
            result = IngestResult(
                sent,
                processed,
                max(last - first, 1) / 1000.0,
                dlq,
                int(noop["events"]),
                float(noop["seconds"]),
            )
            log(
                f"  a no-op Faust agent on the same events: {result.noop_events_per_s:,.0f} "
                f"events/s; ingest runs at {result.events_per_s / result.noop_events_per_s:.2f}x"
            )
            return result
        finally:
            dep.close()
