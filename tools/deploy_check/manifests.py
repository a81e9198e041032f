"""Reading YAML manifests and the worker settings they configure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from streams.settings import Settings

ENV_PREFIX = "RECPRICE__"
Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    """Return the non-empty YAML documents of a file."""
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


class _DeclaredSettings(Settings):
    """`Settings` built from the given values only, never from this process's environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_env(env: dict[str, str]) -> Settings:
    """Return the settings a process with environment ``env`` loads (others' keys ignored).

    Raises pydantic's ValidationError as the process would at start-up.
    """
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        *sections, field = key[len(ENV_PREFIX) :].lower().split("__")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[field] = value
    return _DeclaredSettings(**nested)
