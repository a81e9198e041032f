"""The Strimzi KafkaTopics that `recprice topics create` would create, from `streams.topics`.

deploy/k8s/topics.yaml is written from here (``python -m tools.deploy_check
--write-topics``) and checked against it, so the manifests cannot drift from
the topics, partitions and configs the code declares.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.settings import Settings
from streams.topics import topic_specs
from tools.deploy_check.manifests import Doc

HEADER = """\
# Written by `python -m tools.deploy_check --write-topics` from streams/topics.py
# and the settings of worker-config.yaml; `make deploy-check` fails when they
# differ. Do not edit by hand.
"""


def resource_name(topic: str) -> str:
    """Return a Kubernetes object name for a topic (lower case, no underscores)."""
    return re.sub(r"[^a-z0-9.-]", "-", topic.lower())


def kafka_topics(settings: Settings, cluster: str) -> list[Doc]:
    """Return one KafkaTopic per topic and changelog the app creates, in declaration order."""
    docs = []
    for name, spec in topic_specs(settings).items():
        configs = spec["configs"]
        assert isinstance(configs, dict)
        docs.append(
            {
                "apiVersion": "kafka.strimzi.io/v1",
                "kind": "KafkaTopic",
                "metadata": {
                    "name": resource_name(name),
                    "labels": {"strimzi.io/cluster": cluster},
                },
                "spec": {
                    "topicName": name,
                    "partitions": spec["num_partitions"],
                    "replicas": spec["replication_factor"],
                    "config": dict(configs),
                },
            }
        )
    return docs


def render(docs: list[Doc]) -> str:
    """Return the YAML text of topics.yaml."""
    body = yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)
    return HEADER + body


def topic_drift(path: Path, expected: list[Doc]) -> list[str]:
    """Return how the KafkaTopics in ``path`` differ from ``expected`` (empty when equal)."""
    with path.open() as f:
        found = {
            d["metadata"]["name"]: d
            for d in yaml.safe_load_all(f)
            if isinstance(d, dict) and d.get("kind") == "KafkaTopic"
        }
    problems = []
    for doc in expected:
        name = doc["metadata"]["name"]
        if name not in found:
            problems.append(f"{path}: KafkaTopic {name} is missing")
        elif found.pop(name) != doc:
            problems.append(
                f"{path}: KafkaTopic {name} differs from streams/topics.py: expected "
                f"spec {doc['spec']}"
            )
    problems += [f"{path}: KafkaTopic {n} is not a topic of the app" for n in found]
    if problems:
        problems.append(f"{path}: rewrite it with `python -m tools.deploy_check --write-topics`")
    return problems
