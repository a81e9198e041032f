"""The one topic declaration: it covers every topic setting, and topic creation follows it."""

import pytest

from streams.settings import Settings, TopicNames
from streams.topics import EVENT_TIME_SEGMENTS, AppTables, AppTopics, topic_specs


def test_every_topic_setting_is_declared_once_under_its_own_name():
    settings = Settings(topics={"prefix": "p-"})
    topics = AppTopics.of(settings)
    settings_fields = [f for f in TopicNames.model_fields if f != "prefix"]
    assert [t.field for t in topics.all()] == settings_fields
    for topic in topics.all():
        assert getattr(topics, topic.field) is topic
        assert topic.name == "p-" + getattr(settings.topics, topic.field)
        assert topics.named(topic.field) is topic
    assert topics.named("no_such_topic") is None


def test_names_come_from_the_settings_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RECPRICE__TOPICS__PREFIX", "x-")
    monkeypatch.setenv("RECPRICE__TOPICS__DLQ", "bad-input")
    topics = AppTopics.of(Settings())
    assert topics.dlq.name == "x-bad-input"
    assert topics.events.name == "x-events"
    assert topics.price_updates.name == "x-price-updates"


def test_topics_are_created_as_declared():
    settings = Settings(kafka={"partitions": 6})
    topics, tables = AppTopics.of(settings), AppTables.of(settings)
    specs = topic_specs(settings)
    assert sorted(specs) == sorted(
        [t.name for t in topics.all()] + [t.changelog for t in tables.all()]
    )
    partitions = {name: spec["num_partitions"] for name, spec in specs.items()}
    single = {topics.experiment_events.name, topics.experiment_shares.name}
    single.add(tables.arm_stats.changelog)
    assert {name for name, n in partitions.items() if n == 1} == single
    assert set(partitions.values()) == {1, 6}
    assert specs["items"]["configs"] == {"cleanup.policy": "compact"}
    assert specs["events"]["configs"] == {"retention.ms": "-1", **EVENT_TIME_SEGMENTS}
    assert specs["price-updates"]["configs"] == {"retention.ms": "-1"}
    for table in tables.all():
        assert specs[table.changelog]["configs"] == {"cleanup.policy": "compact"}
        assert table.changelog == f"recprice-{table.name}-changelog"
