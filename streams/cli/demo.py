"""``recprice demo``: the whole pipeline on a slice of MovieLens against a local broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Bootstrap, load_settings


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
    from streams.offline.demo import run_demo

    raise typer.Exit(run_demo(load_settings(bootstrap), out, events))


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``recprice`` app."""
    app.command()(demo)
