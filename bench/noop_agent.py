"""A Faust agent that does nothing with its events: the framework's own ceiling.

Run as ``python -m bench.noop_agent BOOTSTRAP TOPIC EXPECTED DATA_DIR APP_ID``.
It consumes ``TOPIC`` from the beginning in its own consumer group (``APP_ID``), in batches
the way the ingest agent does (``take_events``), and prints one JSON line
with how many events it saw and the seconds from the first to the last.
The ingest benchmark runs it on the same events as the ingest worker, so
the two rates compare what our code costs with what Faust itself costs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, cast

import faust
import orjson

from streams.connection import faust_credentials
from streams.settings import IngestSettings, KafkaSettings, Settings
from streams.worker.app import App, raw_topic
from streams.worker.run import quiet_worker, use_event_loop


def build(
    kafka: KafkaSettings,
    topic_name: str,
    expected: int,
    data_dir: str,
    app_id: str,
    batching: IngestSettings,
    keep_monitor: bool,
) -> faust.App:
    """Return the no-op app: it exits the process once ``expected`` events were taken."""
    app = App(
        app_id,
        keep_monitor=keep_monitor,
        broker=f"kafka://{kafka.bootstrap}",
        broker_credentials=faust_credentials(kafka),
        datadir=data_dir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    # Declared as the worker declares its events topic: undecoded bytes, no codec.
    topic = raw_topic(app, topic_name)
    seen = {"events": 0, "first": 0.0}

    async def noop(stream: faust.StreamT) -> None:
        batches = cast(faust.Stream, stream).take_events(
            batching.max_batch, within=batching.max_wait_s
        )
        async for batch in batches:
            now = time.perf_counter()
            seen["first"] = seen["first"] or now
            seen["events"] += len(batch)
            if seen["events"] >= expected:
                line = {"events": seen["events"], "seconds": now - seen["first"]}
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
                sys.stdout.flush()
                os._exit(0)  # the number is out; no need for an orderly shutdown

    app.agent(topic, name="noop")(noop)
    return app


def main(argv: list[str]) -> None:
    """Run the no-op worker until it has seen the expected events.

    It takes the worker's batching, event loop and Monitor choice from the same
    ``RECPRICE__`` settings as the ingest worker, so the two rates stay comparable.
    """
    topic_name, expected, data_dir, app_id = argv
    settings = Settings()
    use_event_loop(settings.worker.event_loop)
    app: Any = build(
        settings.kafka,
        topic_name,
        int(expected),
        data_dir,
        app_id,
        settings.ingest,
        settings.worker.faust_monitor,
    )
    quiet_worker(app, "warning", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
