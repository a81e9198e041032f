"""No records dropped at the end of table recovery (faust-streaming 0.15.3, aiokafka 0.14.0).

A worker that restarts without committed offsets (killed before its first
commit, or into an empty data dir) could consume nothing after table
recovery, with its positions already at the end of its input partitions.
Three steps of Faust's recovery combine (docs/architecture.md, "Restarts and
table recovery"):

1. Faust hands its fetch the live set of active partitions, which recovery
   empties while the fetch waits; aiokafka reads an empty set as "every
   partition" and returns the input records it prefetched, moving past them.
2. Recovery resumes and seeks the input partitions, then resumes the flow,
   which clears every agent's queue: records fetched in between are dropped.
3. Seeking to committed offsets skips partitions that have none, so nothing
   fetches those records again.

A fourth breaks Faust's rule that input stays stopped from a revoke until the
next recovery's seek:

4. A recovery whose seek ends after the next rebalance's revoke has begun
   resumes the input partitions and the flow that revoke has just stopped
   (the generation id changes only at the next assignment), so records flow
   through the join. A failover run that applied a user's events out of
   order showed such a late recovery.

The subclasses below change exactly those steps: the fetch gets a copy of the
set, the queues are cleared before the seek, a partition without a committed
offset is reset to the consumer's ``auto_offset_reset`` position, and a
recovery that a newer rebalance has overtaken resumes nothing.
They rely on private parts of the pinned versions, so :func:`check_versions`
refuses to start with any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Set
from importlib.metadata import version
from typing import Any, cast

from aiokafka.structs import TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.queues import FlowControlEvent

PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}
"""The versions whose internals this module was written against."""


def check_versions(installed: Callable[[str], str] = version) -> None:
    """Raise unless the installed Faust, aiokafka and mode are the pinned versions."""
    wrong = {name: installed(name) for name, pinned in PINNED.items() if installed(name) != pinned}
    if wrong:
        found = ", ".join(f"{name} {got} (pinned {PINNED[name]})" for name, got in wrong.items())
        raise RuntimeError(
            f"streams.worker.faust_ext.recovery patches Faust's recovery for pinned versions only; "
            f"found {found}: re-check the patch against the new sources before changing the pins"
        )


def partitions_to_reset(
    committed: Mapping[TP, int | None], changelog_topics: Set[str]
) -> tuple[list[TP], list[TP]]:
    """Input partitions to reset to ``auto_offset_reset`` (no commit) and to seek to 0.

    aiokafka's seek to committed offsets moves only partitions whose commit is
    above 0; the others keep whatever position prefetch gave them. Changelog
    partitions are positioned by recovery from the table's own offsets.
    """
    inputs = sorted(
        (tp for tp in committed if tp.topic not in changelog_topics), key=lambda t: tuple(t)
    )
    return (
        [tp for tp in inputs if committed[tp] is None],
        [tp for tp in inputs if committed[tp] == 0],
    )


def resume_keeping_queues(flow_control: FlowControlEvent) -> None:
    """Resume production into the agents' queues without clearing them (``resume()`` clears)."""
    flow_control._suspend.clear()
    flow_control._resume.set()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """aiokafka consumer thread whose seek also moves partitions without a committed offset."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, or reset it."""
        return cast(Mapping[TP, int], await self.call_thread(self._seek_to_committed))

    async def _seek_to_committed(self) -> Mapping[TP, int | None]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int | None] = await consumer.seek_to_committed()
        reset, to_zero = partitions_to_reset(committed, self.app.tables.changelog_topics)
        fetcher = consumer._fetcher
        for tp in to_zero:
            fetcher.seek_to(tp, 0)
        if reset:
            await fetcher.request_offset_reset(
                [TopicPartition(tp.topic, tp.partition) for tp in reset],
                fetcher._default_reset_strategy,
            )
        return committed


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch works on a copy of the active partitions."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(
        self, timeout: float
    ) -> tuple[faust_aiokafka.RecordMap | None, set[TP] | None]:
        # Faust 0.15.3's method with one change: the fetch (and the filter on its
        # records) gets a copy of the active set, so recovery emptying the live
        # set while the fetch waits can no longer turn it into "every partition".
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        try:
            self.not_waiting_next_records.set()
            active: set[TP] | None = None
            if not self.app.client_only:
                active = set(self._get_active_partitions())
            records: faust_aiokafka.RecordMap = {}
            if active is None or active:
                records = await self._getmany(active_partitions=active, timeout=timeout)
            else:
                await self.sleep(1)
            return records, active
        finally:
            self.not_waiting_next_records.set()


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


def overtaken(started_at: int, rebalances_now: int) -> bool:
    """Whether a rebalance began after the one a recovery serves (counts of rebalances begun)."""
    return rebalances_now != started_at


class SafeRecovery(Recovery):
    """Recovery that clears the agents' queues before it seeks and resumes the input partitions."""

    rebalance_started_at: int = 0
    """``app.rebalancing_count`` when the assignment this recovery serves arrived."""

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        """Faust's start of recovery, noting which rebalance it serves."""
        # The consumer thread counts a rebalance when its revoke starts, and waits
        # for this assignment handler before it can start the next one.
        self.rebalance_started_at = self.app.rebalancing_count
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def _seek_and_resume_streams(self, assignment: Iterable[TP]) -> bool:
        """Seek the input partitions and resume them and the flow; False if overtaken."""
        app = self.app
        consumer = app.consumer
        # What reached the queues during recovery is fetched again after the seek.
        app.flow_control.clear()
        assigned = set(assignment)
        if assigned:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        # The generation changes only at the next assignment, but the next revoke has
        # already stopped the flow and paused every partition: leave them to its recovery.
        if overtaken(self.rebalance_started_at, app.rebalancing_count):
            self.log.warning("Recovery overtaken by a newer rebalance; not resuming")
            return False
        consumer.resume_partitions({tp for tp in assigned if not self._is_changelog_tp(tp)})
        self.completed.set()
        resume_keeping_queues(app.flow_control)
        consumer.resume_flow()
        await cast(Any, app)._fetcher.maybe_start()
        return True

    async def _resume_streams(self, generation_id: int = 0) -> None:
        # Faust's method for an app without tables, in the order above.
        app = self.app
        await app.on_rebalance_complete.send()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if not await self._seek_and_resume_streams(app.consumer.assignment()):
            return
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's end of recovery, with the queues cleared before the seek."""
        app = self.app
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                app.consumer_generation_id,
                generation_id,
            )
            return
        if not await self._seek_and_resume_streams(app.consumer.assignment()):
            return
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class SafeTableManager(TableManager):
    """Faust's table manager with :class:`SafeRecovery`."""

    @property
    def recovery(self) -> Recovery:
        """The recovery service, created on first use as Faust does."""
        if self._recovery is None:
            self._recovery = SafeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
