"""The ``recprice`` command line: one module per command group, composed here."""

from __future__ import annotations

import typer

from streams.cli import bench, data, demo, events, model, pricing, worker

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Streaming recommendations and bounded personalized prices.",
)
for group in (worker, events, data, demo, model, pricing, bench):
    group.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
