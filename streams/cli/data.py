"""``recprice data``: public datasets converted into our record contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(no_args_is_help=True, help="Convert public datasets into our contracts.")


@data_app.command("movielens")
def data_movielens(
    out: Annotated[Path, typer.Option(help="Folder for events.jsonl and items.jsonl.")],
) -> None:
    """Convert MovieLens-100K (bundled in the recbole package) into our contracts."""
    from streams.offline.movielens import convert

    try:
        result = convert(out)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"wrote {result.events} events to {result.events_path}")
    typer.echo(f"wrote {result.items} items to {result.items_path}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` group to the ``recprice`` app."""
    app.add_typer(data_app, name="data")
