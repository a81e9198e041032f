"""The one Faust app: topics, the user-state table and every flow, from settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

import faust
from faust.types import TransportT
from mode import ServiceT

from streams.connection import faust_credentials
from streams.records.dead_letter import DeadLetter
from streams.settings import Settings
from streams.topics import AppTables, AppTopics, Topic
from streams.worker.catalog import follow_items
from streams.worker.faust_ext import recovery as faust_recovery
from streams.worker.faust_ext.lag import input_offsets
from streams.worker.flows import experiment, ingest, scoring
from streams.worker.flows.experiment import follow_shares
from streams.worker.health import HealthService, worker_readiness
from streams.worker.log_format import partition_extra
from streams.worker.metrics import LAG_REFRESH_S, WorkerMetrics
from streams.worker.runtime import Runtime
from streams.worker.wiring import ProducerSink, SharesHolder, Sources, Tables, Wiring

log = logging.getLogger(__name__)


class App(faust.App):
    """``faust.App`` with our table recovery (`faust_ext.recovery`); Monitor optional.

    Faust calls every sensor several times per message; its Monitor keeps
    counters and timings for Faust's web views, which the worker does not
    serve, so it is left out unless asked for (its cost: bench/RESULTS.md,
    "The worker without Faust's Monitor sensor").
    """

    def __init__(self, app_id: str, *, keep_monitor: bool, **options: Any) -> None:
        faust_recovery.check_versions()
        self.keep_monitor = keep_monitor
        super().__init__(app_id, TableManager=faust_recovery.SafeTableManager, **options)

    def _new_transport(self) -> TransportT:
        """Faust's aiokafka transport, with the consumer of `faust_ext.recovery`."""
        return faust_recovery.Transport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Faust's own dependencies, then drop the Monitor it has just registered."""
        services = super().on_init_dependencies()
        if not self.keep_monitor:
            self.sensors.remove(self.monitor)
        return services


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    """Declare a topic of undecoded bytes: our own code validates its records, not Faust."""
    return app.topic(
        *names,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


def create_app(settings: Settings, runtime: Runtime) -> faust.App:
    """Build the app, its topics, tables and flows; nothing runs until a worker starts it."""
    kafka = settings.kafka
    app = App(
        settings.app_id,
        keep_monitor=settings.worker.faust_monitor,
        broker=f"kafka://{kafka.bootstrap}",
        broker_credentials=faust_credentials(kafka),
        store="rocksdb://",
        datadir=str(settings.worker.data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        table_standby_replicas=settings.worker.standby_replicas,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_s,
        broker_commit_interval=kafka.commit_interval_s,
        producer_linger=kafka.producer_linger_s,
        producer_max_batch_size=kafka.producer_max_batch_bytes,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
    )

    # Metrics in a registry of this app's own; served below when metrics.port is set.
    metrics = WorkerMetrics()
    metrics.recovery_in_progress.set_function(lambda: float(app.in_recovery))

    # Topics: every one declared in streams.topics; the agents read these four.
    topics = AppTopics.of(settings)

    def topic(declared: Topic) -> faust.TopicT:
        return raw_topic(app, declared.name, partitions=declared.partitions(kafka))

    sources = Sources(
        events=topic(topics.events),
        scoring=topic(topics.scoring),
        offers_and_purchases=raw_topic(app, topics.offers.name, topics.purchases.name),
        experiment_events=topic(topics.experiment_events),
    )
    dlq = topic(topics.dlq)
    dead_letter_sources = {topics.events.name: "events", topics.items.name: "items"}

    # Tables: RocksDB by key, each with its compacted changelog, declared as a flow uses it.
    tables = Tables(app, AppTables.of(settings), kafka)

    async def dead_letter(
        source: str, partition: int, offset: int, raw: bytes | None, error: str
    ) -> None:
        where = partition_extra(source, partition)
        log.warning("dead letter %s[%d]@%d: %s", source, partition, offset, error, extra=where)
        await dlq.send(value=DeadLetter.of(source, partition, offset, raw, error).to_json())
        metrics.dead_lettered(dead_letter_sources.get(source, "other"), error)

    wiring = Wiring(
        topics=topics,
        sources=sources,
        tables=tables,
        sink=ProducerSink(app, dead_letter),
        shares=SharesHolder(settings.pricing.initial_shares()),
        metrics=metrics,
    )

    # Flows: events -> user state -> scoring requests -> top-K and prices -> outcomes.
    ingest.register(app, wiring, runtime, settings)
    if settings.scorer.enabled:
        scoring.register(app, wiring, runtime, settings)
        experiment.register(app, wiring, runtime, settings)

        @app.task
        async def shares_follower() -> None:
            await follow_shares(wiring.shares, kafka, topics.experiment_shares.name)

    @app.task
    async def catalog_follower() -> None:
        await follow_items(
            runtime.catalog,
            kafka,
            topics.items.name,
            settings.scorer.catalog_refresh_s,
            dead_letter,
        )

    @app.timer(interval=LAG_REFRESH_S)
    async def consumer_lag() -> None:
        metrics.set_lag(input_offsets(app))

    if settings.metrics.port:
        # A dependency added now starts before the consumer: the probes answer during recovery.
        ready = partial(worker_readiness, app, runtime.catalog)
        app.add_dependency(
            HealthService(settings.metrics.host, settings.metrics.port, metrics.registry, ready)
        )
    return app
