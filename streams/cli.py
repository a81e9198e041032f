"""The ``recprice`` command line: flags map onto the one settings object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from streams.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="Manage the app's Kafka topics.")
data_app = typer.Typer(no_args_is_help=True, help="Convert public datasets into our contracts.")
broker_app = typer.Typer(no_args_is_help=True, help="The local Kafka broker (deploy/broker.sh).")
app.add_typer(topics_app, name="topics")
app.add_typer(data_app, name="data")
app.add_typer(broker_app, name="broker")

Bootstrap = Annotated[
    str | None, typer.Option("--bootstrap", help="Kafka host:port (default from settings).")
]
Prefix = Annotated[
    str | None, typer.Option("--prefix", help="Topic/app-id prefix, e.g. for a replay.")
]


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) else value
    return out


def load_settings(bootstrap: str | None = None, prefix: str | None = None, **more: Any) -> Settings:
    """Load settings from the environment, with command-line flags on top."""
    overrides: dict[str, Any] = dict(more)
    if bootstrap:
        overrides["kafka"] = {"bootstrap": bootstrap}
    if prefix is not None:
        overrides["topics"] = {"prefix": prefix}
    if not overrides:
        return Settings()
    try:
        return Settings(**_merge(Settings().model_dump(), overrides))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
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
    from streams.worker import run_worker

    run_worker(settings)


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = None, prefix: Prefix = None) -> None:
    """Create every topic with the configured partitions (existing ones are kept)."""
    from streams.topics import create_topics

    created = create_topics(load_settings(bootstrap, prefix))
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


@app.command()
def produce(
    record: Annotated[
        str | None, typer.Argument(help="One JSON event; '-' or nothing reads stdin.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A JSONL file of events.")
    ] = None,
    topic: Annotated[str, typer.Option(help="Which topic field: events or items.")] = "events",
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Send one event (argument or stdin) or a JSONL file to the events (or items) topic."""
    from functools import partial

    from streams.io import producer, send_log
    from streams.replay import log_records, read_log

    if topic not in ("events", "items"):
        raise typer.BadParameter("--topic must be 'events' or 'items'")
    if record is not None and file is not None:
        raise typer.BadParameter("give either a record or --file, not both")
    settings = load_settings(bootstrap, prefix)
    key_field = "user_id" if topic == "events" else "item_id"
    if file is not None:
        if not file.is_file():
            raise typer.BadParameter(f"{file} is not a file")
        records = read_log(file, key_field)
    else:
        text = sys.stdin.buffer.read() if record is None or record == "-" else record.encode()
        if not text.strip():
            raise typer.BadParameter("no record given")
        records = log_records(text.splitlines(), key_field)
    summary = send_log(
        partial(producer, settings.kafka.bootstrap),
        settings.topics.name(topic),
        records,
        lambda refusal: typer.echo(str(refusal), err=True),
    )
    typer.echo(summary.line())
    if not summary.complete:
        raise typer.Exit(1)


@app.command()
def replay(
    log: Annotated[Path, typer.Argument(help="JSONL event log in our contract.")],
    speed: Annotated[
        float | None, typer.Option(help="x real time (e.g. 60); default as fast as possible.")
    ] = None,
    from_ts: Annotated[
        int | None, typer.Option("--from", help="First event time (epoch ms).")
    ] = None,
    until_ts: Annotated[
        int | None, typer.Option("--until", help="Stop before this event time (epoch ms).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Send at most this many events.")] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Produce an event log with its original keys and timestamps."""
    from functools import partial
    from itertools import islice

    from tqdm import tqdm

    from streams.io import producer, send_log
    from streams.replay import Pacer, in_range, paced, read_log

    if speed is not None and speed <= 0:
        raise typer.BadParameter("--speed must be positive")
    if from_ts is not None and until_ts is not None and until_ts <= from_ts:
        raise typer.BadParameter("--until must be after --from")
    if not log.is_file():
        raise typer.BadParameter(f"{log} is not a file")
    settings = load_settings(bootstrap, prefix)
    records = in_range(read_log(log), from_ts, until_ts)
    if limit is not None:
        records = islice(records, limit)
    with tqdm(paced(records, Pacer(speed)), unit="ev", desc="replay", disable=None) as bar:
        summary = send_log(
            partial(producer, settings.kafka.bootstrap),
            settings.topics.name("events"),
            bar,
            lambda refusal: bar.write(str(refusal), file=sys.stderr),
        )
    typer.echo(summary.line())
    if not summary.complete:
        raise typer.Exit(1)


@app.command()
def tail(
    topic: Annotated[
        str,
        typer.Argument(help="recommendations, price_updates, dlq, events, items or a full name."),
    ],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    max_records: Annotated[int | None, typer.Option("--max", help="Stop after N records.")] = None,
    idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without a record.")
    ] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
) -> None:
    """Print records of an output topic as JSON lines."""
    from streams.io import read_topic

    settings = load_settings(bootstrap, prefix)
    name = topic.replace("-", "_")
    full = settings.topics.name(name) if name in type(settings.topics).model_fields else topic
    if max_records is not None and max_records < 1:
        raise typer.BadParameter("--max must be at least 1")
    try:
        for record in read_topic(
            settings.kafka.bootstrap,
            full,
            from_beginning=from_beginning,
            max_records=max_records,
            idle_timeout_s=idle,
        ):
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
            sys.stdout.flush()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@data_app.command("movielens")
def data_movielens(
    out: Annotated[Path, typer.Option(help="Folder for events.jsonl and items.jsonl.")],
) -> None:
    """Convert MovieLens-100K (bundled in the recbole package) into our contracts."""
    from encoders.movielens import convert

    try:
        result = convert(out)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"wrote {result.events} events to {result.events_path}")
    typer.echo(f"wrote {result.items} items to {result.items_path}")


Brokers = Annotated[
    int,
    typer.Option(
        "--brokers",
        help="1: the single broker; 3: the KRaft cluster for failover tests (replication 3, "
        "min.insync.replicas 2), node i on RECPRICE_CLUSTER_PORT (19192) + 10*(i-1).",
    ),
]


def _broker(action: str, brokers: int) -> None:
    script = Path(__file__).resolve().parent.parent / "deploy" / "broker.sh"
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


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the consumed outputs are written.")] = Path(
        "demo-out"
    ),
    events: Annotated[int, typer.Option(help="MovieLens events to replay.")] = 3000,
    bootstrap: Bootstrap = None,
) -> None:
    """Run the whole pipeline on a slice of MovieLens against a local broker."""
    if events < 1:
        raise typer.BadParameter("--events must be at least 1")
    from streams.demo import run_demo

    raise typer.Exit(run_demo(load_settings(bootstrap), out, events))


def main() -> None:
    """Console-script entry point."""
    app()


def _register_commands() -> None:
    # Command groups that live with their own flows; imported lazily inside.
    from streams import commands_bench, commands_model, commands_pricing

    commands_model.register(app)
    commands_pricing.register(app)
    commands_bench.register(app)


_register_commands()
