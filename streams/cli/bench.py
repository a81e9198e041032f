"""``recprice bench``: throughput and latency against the encoder's own limit.

The measurements live in ``bench/`` beside the packages (see bench/RESULTS.md);
they need the local broker, which this command starts when nothing answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Bootstrap, load_settings, reachable


def bench(
    quick: Annotated[bool, typer.Option(help="Smaller samples: under 5 minutes.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Results JSON (default bench/results/<machine>.json).")
    ] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Benchmark encoder, scorer, micro-batching, ingest, end to end and state size."""
    from bench.run import FULL, QUICK, default_out, run_bench
    from streams.offline.local import answers, start_local_broker

    settings = load_settings(bootstrap)
    if not answers(settings.kafka.bootstrap):
        start_local_broker(settings.kafka.bootstrap)
    kafka = reachable(settings).kafka
    command = "recprice bench" + (" --quick" if quick else "") + (f" --out {out}" if out else "")
    run_bench(QUICK if quick else FULL, out or default_out(), kafka, command, typer.echo)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to the ``recprice`` app."""
    app.command()(bench)
