"""The compose file: the compose-spec schema, references between services, workers' volumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import yaml

from tools.deploy_check.manifests import Doc, settings_from_env

WORKER_IMAGE = "recprice"
DATA_DIR = "/var/lib/recprice"
METRICS_PORT = 9100


def schema_problems(path: Path, compose: Doc, schema_path: Path) -> list[str]:
    """Return where ``compose`` breaks the compose-spec JSON schema."""
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{path}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    ]


def named_volumes(service: Doc) -> list[tuple[str, str]]:
    """Return (source, target) of a service's named-volume mounts (not bind mounts)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source and not source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def is_worker(service: Doc) -> bool:
    """Tell whether a service runs `recprice worker` (our image, its own entry point)."""
    image = str(service.get("image", ""))
    return image.split(":")[0] == WORKER_IMAGE and "entrypoint" not in service


def reference_problems(path: Path, compose: Doc) -> list[str]:
    """Return references to services or volumes the file does not declare."""
    services: dict[str, Doc] = compose.get("services") or {}
    volumes = set(compose.get("volumes") or {})
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for other in depends if isinstance(depends, list) else list(depends):
            if other not in services:
                problems.append(f"{path}: {name} depends on undeclared service {other}")
        for source, _ in named_volumes(service):
            if source not in volumes:
                problems.append(f"{path}: {name} mounts undeclared volume {source}")
    return problems


def worker_problems(path: Path, compose: Doc) -> list[str]:
    """Return workers sharing a data volume or whose settings would not load."""
    services: dict[str, Doc] = compose.get("services") or {}
    owners: dict[str, str] = {}
    problems = []
    for name, service in services.items():
        if not is_worker(service):
            continue
        data = [s for s, target in named_volumes(service) if target == DATA_DIR]
        if not data:
            problems.append(f"{path}: worker {name} has no named volume at {DATA_DIR}")
        for source in data:
            if source in owners:
                problems.append(f"{path}: workers {owners[source]} and {name} share {source}")
            owners[source] = name
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        try:
            settings_from_env({k: str(v) for k, v in env.items()})
        except pydantic.ValidationError as exc:
            problems.append(f"{path}: worker {name}'s settings do not load: {exc}")
    return problems


def scrape_targets(prometheus: Path) -> set[str]:
    """Return every static scrape target of a Prometheus configuration."""
    config: dict[str, Any] = yaml.safe_load(prometheus.read_text()) or {}
    return {
        target
        for job in config.get("scrape_configs") or []
        for static in job.get("static_configs") or []
        for target in static.get("targets") or []
    }


def check_compose(path: Path, schema_path: Path, prometheus: Path) -> list[str]:
    """Return every problem of the compose file and of Prometheus's targets for its workers."""
    compose = yaml.safe_load(path.read_text())
    if not isinstance(compose, dict):
        return [f"{path}: not a compose mapping"]
    problems = schema_problems(path, compose, schema_path)
    problems += reference_problems(path, compose)
    problems += worker_problems(path, compose)
    workers = {n for n, s in (compose.get("services") or {}).items() if is_worker(s)}
    expected = {f"{w}:{METRICS_PORT}" for w in workers}
    targets = scrape_targets(prometheus)
    if targets != expected:
        problems.append(
            f"{prometheus}: scrape targets {sorted(targets)} are not the compose workers "
            f"{sorted(expected)}"
        )
    return problems
