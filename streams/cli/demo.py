"""``recprice demo``: the whole pipeline on a slice of MovieLens against a local broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Bootstrap, load_settings
from streams.offline.demo_model import DEFAULT_CACHE, ModelChoice, demo_recipe


def demo(
    out: Annotated[Path, typer.Option(help="Where the consumed outputs are written.")] = Path(
        "demo-out"
    ),
    events: Annotated[int, typer.Option(help="MovieLens events to replay.")] = 3000,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            exists=True,
            file_okay=False,
            help="Serve this model directory instead of the demo's own (neither trained "
            "nor measured here).",
        ),
    ] = None,
    zero_shot: Annotated[
        bool,
        typer.Option("--zero-shot", help="Serve the pre-trained MiniLM; train nothing."),
    ] = False,
    model_cache: Annotated[
        Path,
        typer.Option(help="Where the demo's trained models are kept, one folder per recipe."),
    ] = DEFAULT_CACHE,
    train_per_user: Annotated[
        int,
        typer.Option(
            min=1, help="Most recent training examples per user in the demo model's recipe."
        ),
    ] = demo_recipe().max_train_per_user,
    bootstrap: Bootstrap = None,
) -> None:
    """Run the whole pipeline on a slice of MovieLens against a local broker.

    The worker serves a model fine-tuned on MovieLens without the slice's
    users; the first run trains it (a few minutes on a CPU) and keeps it
    under --model-cache for later runs.
    """
    if events < 1:
        raise typer.BadParameter("--events must be at least 1")
    if model is not None and zero_shot:
        raise typer.BadParameter("--model and --zero-shot exclude each other")
    from streams.offline.demo import run_demo

    choice = ModelChoice(
        model_dir=model,
        zero_shot=zero_shot,
        cache=model_cache,
        recipe=demo_recipe(max_train_per_user=train_per_user),
    )
    raise typer.Exit(run_demo(load_settings(bootstrap), out, events, model=choice))


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``recprice`` app."""
    app.command()(demo)
