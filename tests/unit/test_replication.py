"""Replicated topics without a broker: settings, topic specs, Faust's own topics, the CLI."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import streams.cli.main
import streams.cli.worker
from streams.offline.local import LocalCluster
from streams.settings import KafkaSettings, Settings
from streams.topics import AppTables, topic_specs
from streams.worker.app import create_app
from streams.worker.catalog import Catalog
from streams.worker.runtime import Runtime

REPLICATED = {"replication": 3, "min_insync_replicas": 2}


def test_min_insync_replicas_cannot_exceed_the_replication_factor():
    assert KafkaSettings().min_insync_replicas == 1
    with pytest.raises(ValidationError, match="exceeds replication"):
        KafkaSettings(replication=2, min_insync_replicas=3)
    with pytest.raises(ValidationError, match="exceeds replication"):
        Settings(kafka={"min_insync_replicas": 2})


def test_every_replicated_topic_gets_min_insync_replicas_changelogs_included():
    settings = Settings(kafka=REPLICATED)
    specs = topic_specs(settings)
    assert AppTables.of(settings).user_state.changelog in specs
    for name, spec in specs.items():
        assert spec["replication_factor"] == 3, name
        configs = spec["configs"]
        assert isinstance(configs, dict)
        assert configs["min.insync.replicas"] == "2", name
    # The topic's own configs are kept beside it.
    assert specs["items"]["configs"] == {"cleanup.policy": "compact", "min.insync.replicas": "2"}


def test_unreplicated_topics_keep_the_broker_default():
    for spec in topic_specs(Settings()).values():
        configs = spec["configs"]
        assert isinstance(configs, dict)
        assert "min.insync.replicas" not in configs


class RecordingProducer:
    """Stands in for Faust's producer: records what Faust asks the broker to create."""

    def __init__(self) -> None:
        self.created: dict[str, int] = {}

    async def create_topic(
        self, topic: str, partitions: int, replication: int, **_: object
    ) -> None:
        self.created[topic] = replication


async def test_the_topics_faust_creates_itself_get_our_replication_factor():
    settings = Settings(kafka=REPLICATED, scorer={"enabled": False})
    app = create_app(settings, Runtime(Catalog(), model=None))
    recorder = RecordingProducer()

    async def producer() -> RecordingProducer:
        return recorder

    app.maybe_start_producer = producer  # type: ignore[method-assign]
    # The assignor's leader election topic and each table's changelog topic.
    topics = [app._leader_assignor._leader_topic]  # type: ignore[attr-defined]
    topics += [table.changelog_topic for table in app.tables.values()]
    for topic in topics:
        await topic.declare()
    assert f"{settings.app_id}-__assignor-__leader" in recorder.created
    assert AppTables.of(settings).user_state.changelog in recorder.created
    assert set(recorder.created.values()) == {3}


def test_the_cluster_bootstrap_names_every_node():
    cluster = LocalCluster(base_port=20000)
    assert list(cluster.nodes) == [1, 2, 3]
    assert cluster.node_bootstrap(3) == "127.0.0.1:20020"
    assert cluster.bootstrap == "127.0.0.1:20000,127.0.0.1:20010,127.0.0.1:20020"


@pytest.mark.parametrize("command", ["start", "stop", "status"])
def test_broker_commands_pass_the_cluster_size_to_the_script(
    command: str, monkeypatch: pytest.MonkeyPatch
):
    calls: list[list[str]] = []

    def call(args: list[str]) -> int:
        calls.append(args)
        return 3

    monkeypatch.setattr(streams.cli.worker.subprocess, "call", call)
    runner = CliRunner()
    result = runner.invoke(streams.cli.main.app, ["broker", command, "--brokers", "3"])
    assert result.exit_code == 3  # the script's exit status
    assert calls[0][0] == "bash" and calls[0][1].endswith("deploy/broker.sh")
    assert calls[0][2:] == [command, "--brokers", "3"]
    runner.invoke(streams.cli.main.app, ["broker", command])
    assert calls[1][2:] == [command, "--brokers", "1"]
