"""The Kubernetes manifests: API schemas, the kustomization, and their fit with the code.

Core kinds are validated with kubernetes-validate against the API of
`KUBERNETES_VERSION`, unknown fields refused. Custom resources are validated
against the vendored CRD schemas (deploy/schemas/README.md) made as strict as
``kubectl apply --validate=strict``: an object schema that lists its
properties and does not keep unknown fields refuses others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import yaml

from streams.settings import Settings
from streams.topics import AppTopics
from tools.deploy_check.manifests import Doc, load_docs, settings_from_env
from tools.deploy_check.topics import kafka_topics, topic_drift

KUBERNETES_VERSION = "1.33.0"
KUSTOMIZATION = "kustomization.yaml"
TOPICS_FILE = "topics.yaml"
WORKER = "recprice-worker"
# An object's name (RFC 1123 subdomain), as the API server requires.
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def strict(schema: Any) -> Any:
    """Return a CRD schema whose listed-property objects refuse unlisted fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def crd_schema(schemas: Path, doc: Doc) -> dict[str, Any] | None:
    """Return the strict vendored schema of a custom resource's kind, if vendored."""
    path = schemas / str(doc.get("apiVersion")) / f"{doc.get('kind')}.json"
    if "/" not in str(doc.get("apiVersion")) or not path.is_file():
        return None
    schema: dict[str, Any] = strict(json.loads(path.read_text()))
    schema["properties"]["metadata"] = OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


def schema_problems(where: str, doc: Doc, schemas: Path) -> list[str]:
    """Return where one manifest breaks its kind's schema."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return [f"{where}: not a Kubernetes object (apiVersion and kind are required)"]
    schema = crd_schema(schemas, doc)
    if schema is not None:
        errors = jsonschema.Draft7Validator(schema).iter_errors(doc)
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(errors, key=lambda e: list(e.absolute_path))
        ]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(map(str, exc.absolute_path)) or "(top)"
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: no schema: {exc.message}; vendor its CRD under deploy/schemas/crds"]
    return []


def selector_problems(where: str, doc: Doc) -> list[str]:
    """Return a workload whose selector does not match its pod template's labels."""
    if doc.get("kind") not in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"):
        return []
    wanted = (doc.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    labels = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
    if not wanted or any(labels.get(k) != v for k, v in wanted.items()):
        return [f"{where}: spec.selector.matchLabels must match the pod template's labels"]
    return []


def kustomization_problems(k8s: Path) -> list[str]:
    """Return manifests the kustomization leaves out, or lists without the file."""
    path = k8s / KUSTOMIZATION
    if not path.is_file():
        return [f"{path}: missing"]
    listed = (yaml.safe_load(path.read_text()) or {}).get("resources") or []
    present = sorted(p.name for p in k8s.glob("*.yaml") if p.name != KUSTOMIZATION)
    if sorted(listed) != present:
        return [f"{path}: resources {sorted(listed)} are not the manifests {present}"]
    return []


def worker_env(docs: list[Doc]) -> dict[str, str]:
    """Return the worker container's environment: its ConfigMaps, then its own env.

    A value taken from a Secret stands in as a placeholder: only its presence matters here.
    """
    configmaps = {
        d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"
    }
    (statefulset,) = [
        d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == WORKER
    ]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env") or []:
        env[var["name"]] = str(var.get("value", "from-a-secret"))
    return env


def autoscaling_problems(where: str, doc: Doc, settings: Settings) -> list[str]:
    """Return a ScaledObject that could ask for more workers than partitions, or watches else."""
    if doc.get("kind") != "ScaledObject":
        return []
    partitions = AppTopics.of(settings).events.partitions(settings.kafka)
    problems = []
    if int(doc["spec"].get("maxReplicaCount", 100)) > partitions:
        problems.append(
            f"{where}: maxReplicaCount {doc['spec'].get('maxReplicaCount')} exceeds the "
            f"{partitions} partitions of the events topic"
        )
    for trigger in doc["spec"]["triggers"]:
        meta = trigger.get("metadata") or {}
        if trigger["type"] == "kafka" and (
            meta.get("topic") != AppTopics.of(settings).events.name
            or meta.get("consumerGroup") != settings.app_id
            or meta.get("bootstrapServers") != settings.kafka.bootstrap
        ):
            problems.append(
                f"{where}: the kafka trigger must watch topic {AppTopics.of(settings).events.name}"
                f" of group {settings.app_id} at {settings.kafka.bootstrap}"
            )
    return problems


def fit_problems(k8s: Path, located: list[tuple[str, Doc]]) -> list[str]:
    """Return where the manifests disagree with the worker's settings and the code's topics."""
    docs = [d for _, d in located]
    try:
        settings = settings_from_env(worker_env(docs))
    except (KeyError, ValueError, pydantic.ValidationError) as exc:
        return [f"{k8s}: the worker's ConfigMap and env do not give valid settings: {exc}"]
    clusters = [d["metadata"]["name"] for d in docs if d["kind"] == "Kafka"]
    problems = topic_drift(k8s / TOPICS_FILE, kafka_topics(settings, clusters[0]))
    for where, doc in located:
        problems += autoscaling_problems(where, doc, settings)
        replicas = doc.get("spec", {}).get("replicas", 1) if doc["kind"] == "StatefulSet" else 0
        if replicas > settings.kafka.partitions:
            problems.append(
                f"{where}: {replicas} workers exceed {settings.kafka.partitions} partitions"
            )
    return problems


def check_manifests(k8s: Path, schemas: Path) -> list[str]:
    """Return every problem of the manifests in ``k8s``."""
    problems = kustomization_problems(k8s)
    located: list[tuple[str, Doc]] = []
    for path in sorted(k8s.glob("*.yaml")):
        if path.name == KUSTOMIZATION:
            continue
        for i, doc in enumerate(load_docs(path)):
            where = (
                f"{path} #{i + 1} {doc.get('kind', '?')}" if isinstance(doc, dict) else str(path)
            )
            problems += schema_problems(where, doc, schemas)
            if isinstance(doc, dict) and "kind" in doc:
                problems += selector_problems(where, doc)
                located.append((where, doc))
    if problems:
        return problems  # the settings and topics below assume well-formed objects
    return fit_problems(k8s, located)
