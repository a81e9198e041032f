"""``recprice data``: public datasets converted, or synthetic ones generated, in our contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from streams.cli.config_flags import config_from_flags, with_config_flags
from streams.offline.synthetic import SyntheticConfig, generate

data_app = typer.Typer(no_args_is_help=True, help="Public or synthetic datasets in our contracts.")


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


@data_app.command("synthetic")
@with_config_flags(SyntheticConfig, {})
def data_synthetic(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder for events.jsonl and items.jsonl.")],
    **flags: Any,
) -> None:
    """Generate a seeded synthetic log: popularity skew, users' topics, sessions.

    One flag per field of the generator's config (streams/offline/synthetic.py);
    the behaviour model is in docs/model.md, "Synthetic data at scale".
    """
    config = config_from_flags(ctx, SyntheticConfig, flags, {})
    result = generate(out, config)
    typer.echo(f"wrote {result.events} events of {result.users} users to {result.events_path}")
    typer.echo(f"wrote {result.items} items to {result.items_path}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` group to the ``recprice`` app."""
    app.add_typer(data_app, name="data")
