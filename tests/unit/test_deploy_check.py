"""tools.deploy_check: the real deploy/ files pass, and a broken copy of each artifact fails."""

import json
import shutil
from pathlib import Path

import pytest

from tools.deploy_check.__main__ import check, main
from tools.deploy_check.compose import check_compose
from tools.deploy_check.dockerfile import check_dockerfile
from tools.deploy_check.files import DeployFiles
from tools.deploy_check.kube import check_manifests
from tools.deploy_check.manifests import settings_from_env
from tools.deploy_check.vendor import embedded_compose_schema, without_descriptions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path) -> DeployFiles:
    """A copy of the repository's deploy artifacts, to break one at a time."""
    real = DeployFiles.at(ROOT)
    files = DeployFiles.at(tmp_path)
    files.k8s.parent.mkdir(parents=True)
    for name in ("dockerfile", "compose", "prometheus"):
        shutil.copy(getattr(real, name), getattr(files, name))
    shutil.copytree(real.k8s, files.k8s)
    shutil.copytree(real.compose_schema.parent, files.compose_schema.parent)
    return files


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_repository_deploy_files_pass(capsys):
    assert check(DeployFiles.at(ROOT)) == []
    assert main([str(ROOT)]) == 0
    assert capsys.readouterr().out.strip().endswith("deploy-check: ok")


def test_the_untouched_copy_passes(copy):
    assert check(copy) == []


def test_a_dockerfile_that_hadolint_refuses_fails(copy):
    edit(
        copy.dockerfile,
        "FROM ${PYTHON_IMAGE} AS runtime\n",
        "FROM ${PYTHON_IMAGE} AS runtime\nRUN apt-get install curl\n",
    )
    problems = check_dockerfile(copy.dockerfile)
    assert any("hadolint DL3008" in p for p in problems), problems  # unpinned apt package
    assert any("hadolint DL3014" in p for p in problems), problems  # no -y


def test_an_image_running_as_root_without_healthcheck_fails(copy):
    edit(copy.dockerfile, "USER 10001:10001", "USER root")
    edit(copy.dockerfile, "HEALTHCHECK", "# HEALTHCHECK")
    problems = check_dockerfile(copy.dockerfile)
    assert any("hadolint DL3002" in p for p in problems), problems  # last USER is root
    assert any("non-root USER" in p for p in problems), problems
    assert any("needs HEALTHCHECK with /livez" in p for p in problems), problems


def test_compose_with_an_unknown_key_fails(copy):
    edit(copy.compose, "    hostname: kafka\n", "    hostnam: kafka\n")
    problems = check_compose(copy.compose, copy.compose_schema, copy.prometheus)
    assert any("services/kafka" in p and "'hostnam'" in p for p in problems), problems


def test_compose_depending_on_a_missing_service_fails(copy):
    edit(copy.compose, "    depends_on:\n      kafka:\n", "    depends_on:\n      kafkaa:\n")
    problems = check_compose(copy.compose, copy.compose_schema, copy.prometheus)
    assert any("depends on undeclared service kafkaa" in p for p in problems), problems


def test_compose_workers_sharing_a_data_volume_or_unscraped_fail(copy):
    edit(
        copy.compose,
        "      - worker-2-data:/var/lib/recprice",
        "      - worker-1-data:/var/lib/recprice",
    )
    edit(copy.prometheus, "          - worker-2:9100\n", "")
    problems = check_compose(copy.compose, copy.compose_schema, copy.prometheus)
    assert any("workers worker-1 and worker-2 share worker-1-data" in p for p in problems)
    assert any("scrape targets ['worker-1:9100']" in p for p in problems), problems


def test_compose_worker_settings_that_would_not_load_fail(copy):
    edit(copy.compose, 'RECPRICE__KAFKA__PARTITIONS: "4"', 'RECPRICE__KAFKA__PARTITIONS: "four"')
    problems = check_compose(copy.compose, copy.compose_schema, copy.prometheus)
    assert any("settings do not load" in p and "partitions" in p for p in problems), problems


def test_a_statefulset_without_selector_fails(copy):
    worker = copy.k8s / "worker.yaml"
    edit(
        worker,
        "  selector:\n    matchLabels:\n      app.kubernetes.io/name: recprice\n"
        "      app.kubernetes.io/component: worker\n  persistentVolumeClaimRetentionPolicy",
        "  persistentVolumeClaimRetentionPolicy",
    )
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("StatefulSet" in p and "'selector' is a required property" in p for p in problems)


def test_a_core_object_with_an_unknown_field_fails(copy):
    edit(copy.k8s / "worker.yaml", "podManagementPolicy: Parallel", "podManagmentPolicy: Parallel")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("podManagmentPolicy" in p for p in problems), problems


def test_a_kafka_topic_with_partitions_as_text_fails(copy):
    edit(copy.k8s / "topics.yaml", "  partitions: 12\n", "  partitions: '12'\n")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("KafkaTopic: spec/partitions: '12' is not of type 'integer'" in p for p in problems)


def test_custom_resources_with_unknown_fields_fail(copy):
    edit(copy.k8s / "kafka.yaml", "        tls: true\n", "        tls: true\n        tsl: true\n")
    edit(copy.k8s / "autoscaling.yaml", "  maxReplicaCount: 12", "  maxReplicas: 12")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("Kafka: spec/kafka/listeners/0" in p and "'tsl'" in p for p in problems)
    assert any("ScaledObject: spec" in p and "'maxReplicas'" in p for p in problems)


def test_a_custom_resource_without_a_schema_fails(copy):
    (copy.k8s / "extra.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    )
    edit(
        copy.k8s / "kustomization.yaml",
        "  - autoscaling.yaml\n",
        "  - autoscaling.yaml\n  - extra.yaml\n",
    )
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("Widget" in p and "no schema" in p for p in problems), problems


def test_topics_that_drift_from_streams_topics_fail(copy):
    # More partitions in the settings, topics.yaml not rewritten.
    edit(copy.k8s / "worker-config.yaml", 'PARTITIONS: "12"', 'PARTITIONS: "16"')
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("KafkaTopic events differs from streams/topics.py" in p for p in problems)
    assert any("--write-topics" in p for p in problems), problems


def test_a_missing_or_unknown_kafka_topic_fails(copy):
    topics = copy.k8s / "topics.yaml"
    edit(topics, "name: events\n", "name: events-old\n")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("KafkaTopic events is missing" in p for p in problems), problems
    assert any("KafkaTopic events-old is not a topic of the app" in p for p in problems)


def test_rewriting_the_topics_repairs_the_drift(copy):
    edit(copy.k8s / "worker-config.yaml", 'PARTITIONS: "12"', 'PARTITIONS: "16"')
    edit(copy.k8s / "autoscaling.yaml", "maxReplicaCount: 12", "maxReplicaCount: 16")
    assert main(["--write-topics", str(copy.k8s.parent.parent)]) == 0
    assert "partitions: 16" in (copy.k8s / "topics.yaml").read_text()


def test_autoscaling_past_the_partition_count_fails(copy):
    edit(copy.k8s / "autoscaling.yaml", "maxReplicaCount: 12", "maxReplicaCount: 13")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("maxReplicaCount 13 exceeds the 12 partitions" in p for p in problems), problems


def test_autoscaling_on_another_group_fails(copy):
    edit(copy.k8s / "autoscaling.yaml", "consumerGroup: recprice", "consumerGroup: other")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("the kafka trigger must watch topic events of group recprice" in p for p in problems)


def test_a_manifest_left_out_of_the_kustomization_fails(copy):
    edit(copy.k8s / "kustomization.yaml", "  - autoscaling.yaml\n", "")
    problems = check_manifests(copy.k8s, copy.crd_schemas)
    assert any("kustomization.yaml: resources" in p for p in problems), problems


def test_manifest_settings_ignore_this_process_environment(monkeypatch):
    monkeypatch.setenv("RECPRICE__TOPICS__PREFIX", "leaked-")
    settings = settings_from_env({"RECPRICE__KAFKA__PARTITIONS": "12", "OTHER": "x"})
    assert settings.kafka.partitions == 12
    assert settings.topics.prefix == ""


def test_vendoring_finds_the_embedded_compose_schema_and_drops_descriptions():
    schema = {"$id": "compose_spec.json", "type": "object", "description": "d"}
    binary = b"\x00junk" + json.dumps(schema).encode() + b"\x00more{}"
    assert embedded_compose_schema(binary) == schema
    assert without_descriptions({"a": [{"description": "x", "type": "string"}]}) == {
        "a": [{"type": "string"}]
    }
