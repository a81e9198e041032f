"""``recprice produce``, ``replay`` and ``tail``: records into and out of the topics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from streams.cli.options import Bootstrap, Prefix, load_settings, reachable


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

    from streams.offline.kafka_io import producer, send_log
    from streams.offline.replay import log_records, read_log
    from streams.topics import AppTopics

    if topic not in ("events", "items"):
        raise typer.BadParameter("--topic must be 'events' or 'items'")
    if record is not None and file is not None:
        raise typer.BadParameter("give either a record or --file, not both")
    settings = reachable(load_settings(bootstrap, prefix))
    topics = AppTopics.of(settings)
    target, key_field = (
        (topics.events, "user_id") if topic == "events" else (topics.items, "item_id")
    )
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
        partial(producer, settings.kafka),
        target.name,
        records,
        lambda refusal: typer.echo(str(refusal), err=True),
    )
    typer.echo(summary.line())
    if not summary.complete:
        raise typer.Exit(1)


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

    from streams.offline.kafka_io import producer, send_log
    from streams.offline.replay import Pacer, in_range, paced, read_log
    from streams.topics import AppTopics

    if speed is not None and speed <= 0:
        raise typer.BadParameter("--speed must be positive")
    if from_ts is not None and until_ts is not None and until_ts <= from_ts:
        raise typer.BadParameter("--until must be after --from")
    if not log.is_file():
        raise typer.BadParameter(f"{log} is not a file")
    settings = reachable(load_settings(bootstrap, prefix))
    records = in_range(read_log(log), from_ts, until_ts)
    if limit is not None:
        records = islice(records, limit)
    with tqdm(paced(records, Pacer(speed)), unit="ev", desc="replay", disable=None) as bar:
        summary = send_log(
            partial(producer, settings.kafka),
            AppTopics.of(settings).events.name,
            bar,
            lambda refusal: bar.write(str(refusal), file=sys.stderr),
        )
    typer.echo(summary.line())
    if not summary.complete:
        raise typer.Exit(1)


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
    from streams.offline.kafka_io import read_topic
    from streams.topics import AppTopics

    if max_records is not None and max_records < 1:
        raise typer.BadParameter("--max must be at least 1")
    settings = reachable(load_settings(bootstrap, prefix))
    declared = AppTopics.of(settings).named(topic.replace("-", "_"))
    full = declared.name if declared is not None else topic
    try:
        for record in read_topic(
            settings.kafka,
            full,
            from_beginning=from_beginning,
            max_records=max_records,
            idle_timeout_s=idle,
        ):
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
            sys.stdout.flush()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``produce``, ``replay`` and ``tail`` to the ``recprice`` app."""
    app.command()(produce)
    app.command()(replay)
    app.command()(tail)
