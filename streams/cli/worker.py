"""``recprice worker``, ``recprice topics`` and ``recprice broker``: run the system locally."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.options import Bootstrap, Prefix, load_settings, reachable

topics_app = typer.Typer(no_args_is_help=True, help="Manage the app's Kafka topics.")
broker_app = typer.Typer(no_args_is_help=True, help="The local Kafka broker (deploy/broker.sh).")


def worker(
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Fine-tuned model directory (default: zero-shot MiniLM).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the RocksDB tables live.")] = None,
) -> None:
    """Run one Faust worker: ingest, catalogue and scorer agents."""
    more: dict[str, Any] = {}
    if model_dir is not None:
        more["encoder"] = {"model_dir": model_dir}
    if data_dir is not None:
        more["worker"] = {"data_dir": data_dir}
    settings = load_settings(bootstrap, prefix, **more)
    from streams.worker.run import run_worker

    run_worker(settings)  # checks the connection first, in the worker's log format


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = None, prefix: Prefix = None) -> None:
    """Create every topic with the configured partitions (existing ones are kept)."""
    from streams.topics import create_topics

    created = create_topics(reachable(load_settings(bootstrap, prefix)))
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


Brokers = Annotated[
    int,
    typer.Option(
        "--brokers",
        help="1: the single broker; 3: the KRaft cluster for failover tests (replication 3, "
        "min.insync.replicas 2), node i on RECPRICE_CLUSTER_PORT (19192) + 10*(i-1).",
    ),
]


def _broker(action: str, brokers: int) -> None:
    script = Path(__file__).resolve().parents[2] / "deploy" / "broker.sh"
    if not script.is_file():
        raise typer.BadParameter(f"{script} not found: run from a source checkout")
    raise typer.Exit(subprocess.call(["bash", str(script), action, "--brokers", str(brokers)]))


@broker_app.command("start")
def broker_start(brokers: Brokers = 1) -> None:
    """Start the local KRaft broker or cluster on loopback (a no-op when it runs)."""
    _broker("start", brokers)


@broker_app.command("stop")
def broker_stop(brokers: Brokers = 1) -> None:
    """Stop the local broker or cluster."""
    _broker("stop", brokers)


@broker_app.command("status")
def broker_status(brokers: Brokers = 1) -> None:
    """Say whether the local broker (or each cluster node) runs."""
    _broker("status", brokers)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and the ``topics`` and ``broker`` groups to the ``recprice`` app."""
    app.command()(worker)
    app.add_typer(topics_app, name="topics")
    app.add_typer(broker_app, name="broker")
