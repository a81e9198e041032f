"""Kill -9 a worker before its first commit, restart it, and lose nothing.

Three ways a worker comes back, each run ``RECPRICE_SOAK_ROUNDS`` times (3 by
default; ``make soak`` runs 20): on its own data dir, on an empty data dir
(state only from the changelog), and on its own data dir with the local store
one changelog record behind. The first worker commits no offset before it
dies, so the restarted worker must start its input partitions from the
beginning, not from wherever its prefetch left them (docs/architecture.md,
"Restarts and table recovery").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.offline.collect import TopicCollector, latest_recommendations
from streams.topics import AppTables
from streams.worker.catalog import ITEM_VECTORS_FILE
from tests.integration.data import catalog, events, expected_states
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ROUNDS = int(os.environ.get("RECPRICE_SOAK_ROUNDS", "3"))
RESTART_DEADLINE_S = 60.0
VARIANTS = ("own-data-dir", "empty-data-dir", "store-one-record-behind")
# The first worker must die before it commits anything.
NO_COMMIT = {"RECPRICE__KAFKA__COMMIT_INTERVAL_S": "60"}


def poll_until(done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def group_lag(pipe: Pipeline) -> str:
    """Committed offset, end offset and lag of the group's input partitions, one per line."""
    admin = KafkaAdminClient(bootstrap_servers=pipe.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=pipe.bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets(pipe.settings.app_id)[pipe.settings.app_id]
        lines = []
        for topic in (pipe.topics.events.name, pipe.topics.scoring.name):
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            ends = consumer.end_offsets(tps)
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None else None
                lag = ends[tp] - (done or 0)
                lines.append(
                    f"{tp.topic}[{tp.partition}] committed={done} end={ends[tp]} lag={lag}"
                )
        return "\n".join(lines)
    finally:
        consumer.close()
        admin.close()


def events_committed_to_the_end(pipe: Pipeline) -> bool:
    """Whether the group's committed offset of every ``events`` partition is its end offset."""
    admin = KafkaAdminClient(bootstrap_servers=pipe.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=pipe.bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets(pipe.settings.app_id)[pipe.settings.app_id]
        topic = pipe.topics.events.name
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(tps)
        return all(
            ends[tp] == 0 or (tp in committed and committed[tp].offset == ends[tp]) for tp in tps
        )
    finally:
        consumer.close()
        admin.close()


def changelog_states(pipe: Pipeline) -> dict[str, bytes]:
    """Each user's newest state in the ``user_state`` changelog."""
    changelog = AppTables.of(pipe.settings).user_state.changelog
    consumer = KafkaConsumer(
        bootstrap_servers=pipe.bootstrap, group_id=None, consumer_timeout_ms=3000
    )
    tps = [TopicPartition(changelog, p) for p in consumer.partitions_for_topic(changelog)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    latest = {orjson.loads(m.key): m.value for m in consumer}
    consumer.close()
    return latest


def set_store_one_record_behind(data_dir: Path) -> tuple[Path, int]:
    """Move the saved changelog offset of the fullest ``user_state`` store back by one."""
    from rocksdict import Options, Rdict

    key = b"__faust\0offset__"
    saved: list[tuple[int, Path]] = []
    for path in sorted(data_dir.rglob("user_state-*.db")):
        db = Rdict(str(path), options=Options(raw_mode=True))
        raw = db.get(key)
        db.close()
        if raw is not None and int(raw) >= 1:
            saved.append((int(raw), path))
    assert saved, f"no user_state store under {data_dir} saved a changelog offset"
    offset, path = max(saved)
    db = Rdict(str(path), options=Options(raw_mode=True))
    db[key] = str(offset - 1).encode()
    db.close()
    return path, offset - 1


def wait_for_final_states(pipe: Pipeline, expected: dict, timeout_s: float) -> None:
    names = [pipe.topics.recommendations.name]
    collector = TopicCollector(pipe.settings.kafka, names)

    def done() -> bool:
        latest = latest_recommendations(collector.records[names[0]])
        return all(
            u in latest and latest[u]["state_version"] >= s.version for u, s in expected.items()
        )

    ok = collector.until(done, timeout_s)
    latest = latest_recommendations(collector.records[names[0]])
    collector.close()
    if not ok:
        behind = sorted(
            u
            for u, s in expected.items()
            if u not in latest or latest[u]["state_version"] < s.version
        )
        pytest.fail(
            f"{len(behind)}/{len(expected)} users without a recommendation at their final state "
            f"{timeout_s:.0f} s after the restart: {behind}\n"
            f"consumer group:\n{group_lag(pipe)}\nworker logs:\n{pipe.log()}"
        )


def first_recommendation(pipe: Pipeline, timeout_s: float) -> None:
    names = [pipe.topics.recommendations.name]
    collector = TopicCollector(pipe.settings.kafka, names)
    ok = collector.until(lambda: bool(collector.records[names[0]]), timeout_s)
    collector.close()
    assert ok, f"no recommendation within {timeout_s:.0f} s\n{pipe.log()}"


@pytest.mark.parametrize("round_no", range(ROUNDS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_sigkill_before_the_first_commit_then_restart_loses_nothing(
    pipeline: Pipeline, variant: str, round_no: int
):
    items = catalog()
    log = events(users=14, per_user=20, seed=100 + round_no)
    pipeline.send(pipeline.topics.items, items, key_field="item_id")
    first = pipeline.start_worker("data-a", env=NO_COMMIT)
    pipeline.send(pipeline.topics.events, log[:150])
    first_recommendation(pipeline, 120)
    first.kill()
    first.wait()
    pipeline.send(pipeline.topics.events, log[150:] + log[:40])  # the first 40 again: duplicates

    data_dir = "data-b" if variant == "empty-data-dir" else "data-a"
    if variant == "store-one-record-behind":
        set_store_one_record_behind(pipeline.root / "data-a")
    pipeline.start_worker(data_dir)
    expected = expected_states(log, items)
    wait_for_final_states(pipeline, expected, RESTART_DEADLINE_S)

    latest = changelog_states(pipeline)
    assert set(latest) == set(expected)
    for user, state in expected.items():
        assert latest[user] == state.to_json(), user
    # The restarted worker commits every event it consumed (commit interval 1 s).
    assert poll_until(lambda: events_committed_to_the_end(pipeline), 20), (
        f"events not committed to their end offsets:\n{group_lag(pipeline)}"
    )
    # The catalogue keeps its item vectors in the worker's data dir for the next start.
    assert (pipeline.root / data_dir / ITEM_VECTORS_FILE).is_file()
