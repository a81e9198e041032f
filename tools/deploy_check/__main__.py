"""``python -m tools.deploy_check [--write-topics] [ROOT]``: check deploy/ (and rewrite topics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.deploy_check.compose import check_compose
from tools.deploy_check.dockerfile import check_dockerfile
from tools.deploy_check.files import DeployFiles
from tools.deploy_check.kube import TOPICS_FILE, check_manifests, worker_env
from tools.deploy_check.manifests import load_docs, settings_from_env
from tools.deploy_check.topics import kafka_topics, render


def check(files: DeployFiles) -> list[str]:
    """Return every problem of the deploy artifacts under ``files``."""
    return (
        check_dockerfile(files.dockerfile)
        + check_compose(files.compose, files.compose_schema, files.prometheus)
        + check_manifests(files.k8s, files.crd_schemas)
    )


def write_topics(files: DeployFiles) -> Path:
    """Write topics.yaml from streams/topics.py and the worker's settings in the manifests."""
    docs = [
        d for p in sorted(files.k8s.glob("*.yaml")) if p.name != TOPICS_FILE for d in load_docs(p)
    ]
    settings = settings_from_env(worker_env(docs))
    (cluster,) = [d["metadata"]["name"] for d in docs if d.get("kind") == "Kafka"]
    out = files.k8s / TOPICS_FILE
    out.write_text(render(kafka_topics(settings, cluster)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print each problem and return 1 if there is any."""
    parser = argparse.ArgumentParser(prog="python -m tools.deploy_check", description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="repository root")
    parser.add_argument(
        "--write-topics", action="store_true", help="rewrite deploy/k8s/topics.yaml"
    )
    args = parser.parse_args(argv)
    files = DeployFiles.at(args.root)
    if args.write_topics:
        print(f"wrote {write_topics(files)}")
    problems = check(files)
    for problem in problems:
        print(problem)
    print(f"deploy-check: {len(problems)} problem(s)" if problems else "deploy-check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
