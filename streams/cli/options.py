"""Options every command shares, and the settings object built from them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from streams.settings import Settings

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


def reachable(settings: Settings) -> Settings:
    """Return ``settings`` once the broker lets us in with them; else exit with one line why.

    kafka-python and aiokafka would retry a refused connection for a long
    time; a command checks first, within seconds, and consumes nothing.
    """
    from streams.connection import ConnectionProblem, check_connection

    try:
        check_connection(settings.kafka)
    except ConnectionProblem as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    return settings
