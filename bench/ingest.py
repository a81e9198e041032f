"""Ingest through Kafka: one worker, scorer disabled, events/s of the ingest agent.

The events are produced before the worker starts, so the producer never
competes with the worker and start-up is not counted: the rate is taken
between the first and the last scoring request the agent wrote (one per
event). The worker runs a tiny random-weight model: with the scorer off the
model only embeds the catalogue, which would otherwise steal CPU from ingest.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import ratio
from bench.kafka import Deployment
from encoders.model import save_model_dir, tiny_random_model
from encoders.records import Event, Item


@dataclass(frozen=True)
class IngestResult:
    """What one ingest run measured."""

    events: int
    processed: int
    seconds: float
    dlq: int

    @property
    def events_per_s(self) -> float:
        """Events through the ingest agent per second."""
        return ratio(self.processed, self.seconds)


def event_records(events: Sequence[Event]) -> list[tuple[bytes, bytes, int | None]]:
    """(key, value, ts) of each event, keyed by user as the contract says."""
    return [(e.user_id.encode(), orjson.dumps(e.to_dict()), e.ts) for e in events]


def run_ingest(
    bootstrap: str,
    items: Sequence[Item],
    events: Sequence[Event],
    timeout_s: float = 300.0,
    log: Callable[[str], None] = print,
) -> IngestResult:
    """Produce ``events``, start one ingest-only worker, time it through them."""
    with tempfile.TemporaryDirectory(prefix="recprice-bench-ingest-") as tmp:
        root = Path(tmp)
        model_dir = root / "tiny-model"
        save_model_dir(tiny_random_model(), model_dir)
        dep = Deployment(bootstrap, root)
        try:
            dep.create()
            dep.send_items(items)
            sent = dep.send("events", event_records(events))
            log(f"  produced {sent} events; starting an ingest-only worker")
            dep.start_worker(
                {
                    "RECPRICE__SCORER__ENABLED": "false",
                    "RECPRICE__ENCODER__MODEL_DIR": str(model_dir),
                    "RECPRICE__ENCODER__CPU_THREADS": "1",
                }
            )
            started = time.monotonic()
            processed = dep.wait_count("scoring", sent, timeout_s)
            if processed == 0:
                raise RuntimeError(f"ingest produced nothing:\n{dep.log_tail()}")
            first, last = dep.span_ms("scoring")
            dlq = dep.count("dlq")
            log(
                f"  {processed}/{sent} events in {(last - first) / 1000:.1f} s "
                f"(worker up {time.monotonic() - started:.0f} s), dlq {dlq}"
            )
            return IngestResult(sent, processed, max(last - first, 1) / 1000.0, dlq)
        finally:
            dep.close()
