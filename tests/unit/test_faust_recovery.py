"""The four steps of faust_ext.recovery, each against stand-ins for Faust's services."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport import consumer as faust_consumer
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.worker.faust_ext import recovery as faust_recovery
from streams.worker.faust_ext.recovery import (
    PINNED,
    Consumer,
    ConsumerThread,
    SafeRecovery,
    check_versions,
    overtaken,
    partitions_to_reset,
)

EVENTS0, EVENTS1, EVENTS2 = TP("events", 0), TP("events", 1), TP("events", 2)
CHANGELOG0 = TP("app-user_state-changelog", 0)


def test_the_pinned_versions_pass_and_any_other_is_refused():
    check_versions(lambda name: PINNED[name])
    check_versions()  # the installed ones
    with pytest.raises(RuntimeError, match=r"faust-streaming 0\.16\.0 \(pinned 0\.15\.3\)"):
        check_versions(lambda name: "0.16.0" if name == "faust-streaming" else PINNED[name])


def test_only_input_partitions_without_a_commit_are_reset():
    committed = {EVENTS0: None, EVENTS1: 7, EVENTS2: 0, CHANGELOG0: None}
    reset, to_zero = partitions_to_reset(committed, {CHANGELOG0.topic})
    assert reset == [EVENTS0]
    assert to_zero == [EVENTS2]


class FetchStandIn:
    """What ``Consumer._wait_next_records`` touches; recovery empties the live set mid-fetch."""

    def __init__(self) -> None:
        self.live = {EVENTS0, CHANGELOG0}
        self.asked: set[TP] | None = None
        self.flow_active = True
        self.not_waiting_next_records = asyncio.Event()
        self.app = SimpleNamespace(client_only=False)

    def _get_active_partitions(self) -> set[TP]:
        return self.live

    async def _getmany(self, active_partitions: set[TP], timeout: float) -> dict[Any, Any]:
        self.live.clear()  # recovery pauses every partition while the fetch waits
        self.asked = set(active_partitions)
        return {}


async def test_the_fetch_keeps_the_partitions_it_was_given():
    fetch = FetchStandIn()
    records, active = await Consumer._wait_next_records(fetch, 1.0)  # type: ignore[arg-type]
    assert fetch.asked == {EVENTS0, CHANGELOG0}
    assert active == {EVENTS0, CHANGELOG0}


async def test_faust_hands_its_fetch_the_live_set():
    # The defect the patch exists for: when this fails, Faust has changed; re-check the patch.
    fetch = FetchStandIn()
    await faust_consumer.Consumer._wait_next_records(fetch, 1.0)  # type: ignore[arg-type]
    assert fetch.asked == set()


class ResumeStandIn:
    """The parts of Faust's app, consumer and recovery that the end of recovery uses.

    ``revoke_during_seek``: the next rebalance's revoke runs while the seek waits,
    as Faust's does: it counts a rebalance, suspends the flow and clears the queues.
    """

    def __init__(self, revoke_during_seek: bool = False) -> None:
        self.calls: list[str] = []
        self.rebalance_started_at = 3
        self.flow_control = FlowControlEvent(initially_suspended=False)
        self.queue: FlowControlQueue[str] = FlowControlQueue(
            flow_control=self.flow_control, clear_on_resume=True
        )
        self.queue.put_nowait("fetched during recovery")
        self.resumed: set[TP] = set()
        stand_in = self

        class ConsumerStandIn:
            async def perform_seek(self) -> None:
                stand_in.calls.append("seek")
                if revoke_during_seek:
                    stand_in.app.rebalancing_count += 1
                    stand_in.flow_control.suspend()
                    stand_in.flow_control.clear()
                    return
                stand_in.queue.put_nowait("fetched after the seek")

            def resume_partitions(self, tps: set[TP]) -> None:
                stand_in.calls.append("resume partitions")
                stand_in.resumed = tps

            def resume_flow(self) -> None:
                stand_in.calls.append("resume flow")

        class FetcherStandIn:
            async def maybe_start(self) -> None:
                stand_in.calls.append("fetcher")

        self.app = SimpleNamespace(
            consumer=ConsumerStandIn(),
            flow_control=self.flow_control,
            conf=SimpleNamespace(broker_request_timeout=5.0),
            _fetcher=FetcherStandIn(),
            rebalancing_count=3,
        )
        self.log = logging.getLogger("test")
        self.completed = asyncio.Event()

    async def _wait(self, coro: Any, timeout: float | None = None) -> None:
        await coro

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp == CHANGELOG0


async def test_recovery_clears_the_queues_before_the_seek_and_keeps_what_comes_after():
    recovery = ResumeStandIn()
    resumed = await SafeRecovery._seek_and_resume_streams(recovery, {EVENTS0, CHANGELOG0})  # type: ignore[arg-type]
    assert resumed
    assert recovery.calls == ["seek", "resume partitions", "resume flow", "fetcher"]
    assert recovery.resumed == {EVENTS0}
    assert list(recovery.queue._queue) == ["fetched after the seek"]  # type: ignore[attr-defined]
    assert recovery.flow_control.is_active() and recovery.completed.is_set()


def test_resuming_the_flow_keeps_the_queues():
    flow = FlowControlEvent(initially_suspended=True)
    queue: FlowControlQueue[int] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    queue.put_nowait(1)
    faust_recovery.resume_keeping_queues(flow)
    assert flow.is_active() and queue.qsize() == 1


async def test_the_seek_resets_input_partitions_without_a_commit():
    class Fetcher:
        _default_reset_strategy = "earliest-strategy"

        def __init__(self) -> None:
            self.reset: list[Any] = []
            self.zero: list[TP] = []

        def seek_to(self, tp: TP, offset: int) -> None:
            assert offset == 0
            self.zero.append(tp)

        async def request_offset_reset(self, tps: list[Any], strategy: str) -> None:
            self.reset.append((tps, strategy))

    fetcher = Fetcher()

    class AIOKafkaStandIn:
        _fetcher = fetcher

        async def seek_to_committed(self) -> dict[TP, int | None]:
            return {EVENTS0: None, EVENTS1: 4, EVENTS2: 0, CHANGELOG0: None}

    thread = SimpleNamespace(
        _ensure_consumer=lambda: AIOKafkaStandIn(),
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics={CHANGELOG0.topic})),
    )
    committed = await ConsumerThread._seek_to_committed(thread)  # type: ignore[arg-type]
    assert committed[EVENTS1] == 4
    assert [([(t.topic, t.partition) for t in tps], s) for tps, s in fetcher.reset] == [
        ([("events", 0)], "earliest-strategy")
    ]
    assert fetcher.zero == [EVENTS2]


def test_a_recovery_is_overtaken_only_by_a_rebalance_begun_after_its_own():
    assert not overtaken(started_at=4, rebalances_now=4)
    assert overtaken(started_at=4, rebalances_now=5)


async def test_a_recovery_overtaken_during_its_seek_leaves_the_flow_to_the_next_rebalance():
    # Resuming here would feed the agents through the next rebalance's join, which
    # Faust's revoke has just stopped (docs/architecture.md, step 4).
    recovery = ResumeStandIn(revoke_during_seek=True)
    resumed = await SafeRecovery._seek_and_resume_streams(recovery, {EVENTS0, CHANGELOG0})  # type: ignore[arg-type]
    assert not resumed
    assert recovery.calls == ["seek"]
    assert recovery.resumed == set()
    assert not recovery.flow_control.is_active() and not recovery.completed.is_set()


async def test_an_overtaken_recovery_does_not_report_the_worker_ready():
    recovery = ResumeStandIn(revoke_during_seek=True)
    ready: list[str] = []
    recovery.app.on_rebalance_complete = SimpleNamespace(send=_nothing)
    recovery.app.consumer_generation_id = 7
    recovery.app.on_rebalance_end = lambda: ready.append("rebalance end")
    recovery.app.consumer.assignment = lambda: {EVENTS0}
    recovery.tables = SimpleNamespace(
        values=lambda: [],
        on_actives_ready=lambda: ready.append("actives"),
        on_standbys_ready=lambda: ready.append("standbys"),
    )
    recovery._set_recovery_ended = lambda: None  # type: ignore[attr-defined]
    recovery._seek_and_resume_streams = (  # type: ignore[attr-defined]
        lambda tps: SafeRecovery._seek_and_resume_streams(recovery, tps)  # type: ignore[arg-type]
    )
    await SafeRecovery.on_recovery_completed(recovery, generation_id=7)  # type: ignore[arg-type]
    assert recovery.calls == ["seek"]
    assert ready == []


async def _nothing() -> None:
    return None
