"""Before/after of the events topic's size-only rolling, on the ingest benchmark.

Run as ``python -m bench.studies.segment_ab [--events N] [--rounds R] [--bootstrap HOST:PORT]``
with the local broker up. Each round runs :func:`bench.ingest.run_ingest` twice
on the same MovieLens events, alternating: first with the events topic created
with Kafka's default ``segment.ms`` (before), then as ``recprice topics create``
makes it (after). The topics are created in this process, so switching the
setting here is all that differs between the two.
"""

from __future__ import annotations

import argparse

import streams.topics as topics
from bench.ingest import run_ingest
from bench.workload import load_workload
from streams.settings import Settings


def main() -> None:
    """Print one line per run: ingest and no-op Faust events/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    args = parser.parse_args()
    # The connection's security settings come from RECPRICE__KAFKA__* like everywhere else.
    kafka = Settings().kafka.model_copy(update={"bootstrap": args.bootstrap})
    workload = load_workload(16)
    items = list(workload.items.values())
    events = workload.events[: args.events]
    after = dict(topics.EVENT_TIME_SEGMENTS)
    for round_ in range(args.rounds):
        for label, configs in (("before: default segment.ms", {}), ("after: rolls by size", after)):
            # run_ingest creates its topics through streams.topics, which reads this at call time.
            topics.EVENT_TIME_SEGMENTS = configs
            result = run_ingest(kafka, items, events, log=lambda _: None)
            print(
                f"round {round_} {label}: ingest {result.events_per_s:,.0f} events/s, "
                f"no-op Faust agent {result.noop_events_per_s:,.0f} events/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
