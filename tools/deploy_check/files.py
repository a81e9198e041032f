"""Where the deploy artifacts and their schemas live under a repository root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DeployFiles:
    """The checked files under one root (the repository, or a test's broken copy)."""

    dockerfile: Path
    compose: Path
    prometheus: Path
    k8s: Path
    compose_schema: Path
    crd_schemas: Path

    @classmethod
    def at(cls, root: Path) -> DeployFiles:
        """Return the layout of ``root``'s deploy/ folder."""
        deploy = root / "deploy"
        return cls(
            dockerfile=deploy / "Dockerfile",
            compose=deploy / "compose.yaml",
            prometheus=deploy / "prometheus.yml",
            k8s=deploy / "k8s",
            compose_schema=deploy / "schemas" / "compose-spec.json",
            crd_schemas=deploy / "schemas" / "crds",
        )
