"""Command-line options generated from a pydantic config, so the flags cannot drift from it.

Each field ``some_name`` becomes ``--some-name`` (``--some-name/--no-some-name`` for a
bool) with the field's type, default and description as help. Old spellings stay as
hidden aliases of a field: they set it as its own flag would, and do not show in the help.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError

Config = TypeVar("Config", bound=BaseModel)
Command = TypeVar("Command", bound=Callable[..., Any])


def flag_name(field: str) -> str:
    """Spell a config field as its flag: ``item_train_layers`` -> ``--item-train-layers``."""
    return "--" + field.replace("_", "-")


def _alias_parameter(alias: str) -> str:
    return alias.removeprefix("--").replace("-", "_")


def config_parameters(
    config: type[BaseModel], aliases: Mapping[str, str]
) -> list[inspect.Parameter]:
    """Keyword parameters for a typer command: one per field, one hidden per old spelling.

    An old spelling defaults to None (left out); it cannot name a bool field, whose
    ``--no-`` form a None default would lose.
    """
    fields = config.model_fields
    parameters = []
    for name, field in fields.items():
        spelling, text, metavar = flag_name(name), field.description or "", None
        if field.annotation is bool:
            spelling += "/--no-" + spelling.removeprefix("--")
        if get_origin(field.annotation) is Literal:
            # The choices go into the help: as the type column they squeeze an 80-column help.
            text += f" One of: {', '.join(map(str, get_args(field.annotation)))}."
            metavar = "<choice>"
        option = typer.Option(spelling, help=text, metavar=metavar)
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=Annotated[field.annotation, option],
            )
        )
    for alias, name in aliases.items():
        parameter = _alias_parameter(alias)
        if parameter in fields or name not in fields or fields[name].annotation is bool:
            raise ValueError(f"{alias} must rename a non-bool field of {config.__name__}")
        annotation: Any = fields[name].annotation
        parameters.append(
            inspect.Parameter(
                parameter,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[annotation | None, typer.Option(alias, hidden=True)],
            )
        )
    return parameters


def with_config_flags(
    config: type[BaseModel], aliases: Mapping[str, str]
) -> Callable[[Command], Command]:
    """Give a command taking ``**flags`` one option per field of ``config`` (and the aliases)."""

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        fixed = [
            p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*fixed, *config_parameters(config, aliases)]
        )
        return command

    return decorate


def _on_command_line(ctx: typer.Context, parameter: str) -> bool:
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def config_from_flags(
    ctx: typer.Context,
    config: type[Config],
    flags: Mapping[str, Any],
    aliases: Mapping[str, str],
) -> Config:
    """Build the config the flags describe; typer.BadParameter names the flag at fault."""
    values = {name: value for name, value in flags.items() if name in config.model_fields}
    spelled = {name: flag_name(name) for name in values}
    for alias, name in aliases.items():
        value = flags.get(_alias_parameter(alias))
        if value is None:
            continue
        if _on_command_line(ctx, name):
            raise typer.BadParameter(f"{alias} is the old spelling of {flag_name(name)}: give one")
        values[name] = value
        spelled[name] = alias
    try:
        return config.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            problems.append(f"{spelled.get(field, flag_name(field))}: {error['msg']}")
        raise typer.BadParameter("; ".join(problems)) from None
