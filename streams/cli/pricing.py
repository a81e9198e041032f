"""``recprice ab-report`` and ``recprice backtest``: measure the pricing experiment.

``backtest`` replays an event log through the production pricing path with
simulated buyers (`streams.offline.backtest`); ``ab-report`` turns its output folder, a
demo folder or the price-updates topic into ``report.md`` and PNG plots
(`pricing.ab_report`). State, encoder and pricing shapes come from the same
settings object the worker uses (``RECPRICE__STATE__*``, ``RECPRICE__PRICING__*``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from pricing.ab_report import write_ab_report
from streams.cli.options import Bootstrap, Prefix, load_settings, reachable

if TYPE_CHECKING:
    from encoders.model import Recommender
    from streams.topics import AppTopics, Topic


def _model(spec: str, seed: int) -> Recommender:
    """Load ``tiny`` (random, 2 layers), ``pretrained`` (zero-shot MiniLM) or a model directory."""
    from encoders.model import load_model_dir, load_pretrained, tiny_random_model

    if spec == "tiny":
        return tiny_random_model(seed)
    if spec == "pretrained":
        return load_pretrained()
    path = Path(spec)
    if not path.is_dir():
        raise typer.BadParameter(f"--model must be tiny, pretrained or a model directory: {spec}")
    return load_model_dir(path)


def ab_report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and the plots.")],
    input_dir: Annotated[
        Path | None,
        typer.Option(
            "--input", help="Demo, replay or back-test output folder (price_updates.jsonl, ...)."
        ),
    ] = None,
    from_kafka: Annotated[
        bool,
        typer.Option(
            "--from-kafka",
            help="Read the price-updates (and outcomes, shares) topics instead of --input.",
        ),
    ] = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    idle: Annotated[
        float, typer.Option(help="With --from-kafka: stop after this many idle seconds.")
    ] = 5.0,
) -> None:
    """Per-arm offers, conversion, revenue with intervals, uplift vs control, bounds audit."""
    if from_kafka == (input_dir is not None):
        raise typer.BadParameter("give exactly one of --input DIR or --from-kafka")
    if input_dir is not None:
        report = write_ab_report(_existing_dir(input_dir), out)
    else:
        with tempfile.TemporaryDirectory(prefix="recprice-ab-") as tmp:
            folder = Path(tmp)
            _dump_topics(folder, bootstrap, prefix, idle)
            report = write_ab_report(folder, out)
    typer.echo(report.report_path.read_text())
    if report.out_of_bounds:
        raise typer.Exit(1)


def kafka_sources(topics: AppTopics) -> dict[str, Topic]:
    """Output file -> the topic it copies; price updates are required, the rest optional."""
    return {
        "price_updates.jsonl": topics.price_updates,
        "outcomes.jsonl": topics.outcomes,
        "shares.jsonl": topics.experiment_shares,
    }


def _dump_topics(folder: Path, bootstrap: str | None, prefix: str | None, idle: float) -> None:
    """Copy the price-updates topic (and outcomes and bandit shares, if present) into files."""
    from streams.offline.kafka_io import read_topic
    from streams.topics import AppTopics

    settings = reachable(load_settings(bootstrap, prefix))
    topics = AppTopics.of(settings)
    for filename, source in kafka_sources(topics).items():
        topic = source.name
        count = 0
        try:
            with (folder / filename).open("wb") as handle:
                for record in read_topic(
                    settings.kafka,
                    topic,
                    from_beginning=True,
                    max_records=None,
                    idle_timeout_s=idle,
                ):
                    handle.write(orjson.dumps(record) + b"\n")
                    count += 1
        except ValueError as exc:  # the topic does not exist
            (folder / filename).unlink(missing_ok=True)
            if source is topics.price_updates:
                raise typer.BadParameter(str(exc)) from None
            typer.echo(f"no {topic} topic: report without it")
            continue
        typer.echo(f"read {count} records from {topic}")


def _existing_dir(path: Path) -> Path:
    if not (path / "price_updates.jsonl").is_file():
        raise typer.BadParameter(f"{path} has no price_updates.jsonl")
    return path


def backtest(
    events: Annotated[Path, typer.Option("--events", exists=True, help="events.jsonl")],
    items: Annotated[Path, typer.Option("--items", exists=True, help="items.jsonl")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (also gets report/).")],
    offers: Annotated[
        int | None, typer.Option("--offers", help="Stop after about this many offers.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="tiny | pretrained | a model directory.")
    ] = "tiny",
    seed: Annotated[
        int, typer.Option(help="Seed of the buyers, the bandit and the tiny model.")
    ] = 0,
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="Items offered per scoring (default: settings).")
    ] = None,
    score_every: Annotated[
        int, typer.Option(help="Score a user after every K-th event of theirs.")
    ] = 1,
    share_update_every: Annotated[int, typer.Option(help="Offers between bandit updates.")] = 2000,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "cpu",
) -> None:
    """Replay a log through the pricing path with simulated buyers, then write the A/B report."""
    import time

    import torch

    from encoders.config import EncoderConfig
    from encoders.ranker import Ranker
    from pricing.simulator import DemandConfig
    from streams.offline.backtest import BacktestConfig, run_backtest
    from streams.records.files import read_events, read_items
    from streams.settings import Settings

    started = time.perf_counter()
    torch.set_num_threads(threads)
    settings = Settings()
    encoder_overrides: dict[str, object] = {"device": device, "cpu_threads": threads}
    if top_k is not None:
        encoder_overrides["top_k"] = top_k
    try:
        encoder = EncoderConfig.model_validate(settings.encoder.model_dump() | encoder_overrides)
        config = BacktestConfig(
            score_every=score_every,
            max_batch=settings.scorer.max_batch,
            max_offers=offers,
            share_update_every=share_update_every,
            shown_prices_per_user=settings.scorer.shown_prices_per_user,
            progress=True,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    event_list, bad_events = read_events(events)
    item_list, bad_items = read_items(items)
    typer.echo(
        f"{len(event_list)} events ({bad_events} rejected), "
        f"{len(item_list)} items ({bad_items} rejected)"
    )
    ranker = Ranker(_model(model, seed), encoder)
    result = run_backtest(
        event_list,
        item_list,
        ranker,
        out,
        state_config=settings.state,
        pricing=settings.pricing,
        demand=DemandConfig(seed=seed),
        config=config,
    )
    report = write_ab_report(out, out / "report")
    typer.echo(
        f"{result.offers} offers to {result.scorings} scorings in {result.batches} batches, "
        f"{result.purchases} purchases, {result.out_of_bounds} out of bounds, "
        f"{result.share_updates} bandit updates; replay {result.seconds:.1f} s, "
        f"total {time.perf_counter() - started:.1f} s"
    )
    typer.echo(report.report_path.read_text())
    if result.out_of_bounds or report.out_of_bounds:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``ab-report`` and ``backtest`` commands to the ``recprice`` app."""
    app.command("ab-report")(ab_report)
    app.command("backtest")(backtest)
