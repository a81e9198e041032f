"""The worker's Prometheus metrics, kept in a registry of each app's own.

The flows stay pure: their batch functions return what they did, and the
agents hand that to a :class:`WorkerMetrics` method, so each hook is one line
at the edge (docs/architecture.md, "Metrics and health"). Every label has a
small, fixed set of values: a reason class, a table, a price bound, an arm, a
partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from streams.records.scoring import ScoringRequest

REJECT_REASONS: tuple[tuple[str, str], ...] = (
    ("payload of ", "too_large"),
    ("payload is not UTF-8", "not_utf8"),
    ("invalid JSON", "invalid_json"),
    ("expected a JSON object", "not_object"),
    ("missing field", "missing_field"),
    ("unknown event type", "unknown_type"),
    ("message key ", "key_mismatch"),
    ("internal error", "apply_failed"),
)
"""Leading words of a rejection's message (`streams.records.inputs`) -> its reason label."""

OTHER_REASON = "invalid_value"
"""The label of every other rejection: a field present with a value out of its contract."""


def reject_reason(error: str) -> str:
    """Return the low-cardinality reason label of a dead letter's error message."""
    for start, reason in REJECT_REASONS:
        if error.startswith(start):
            return reason
    return OTHER_REASON


def partition_lag(highwater: int | None, committed: int | None) -> int | None:
    """Return the records not yet committed in a partition, None while its end is unknown.

    A partition without a commit counts from offset 0: our topics are never
    trimmed by time.
    """
    if highwater is None:
        return None
    return max(highwater - (committed or 0), 0)


LAG_REFRESH_S = 5.0
"""How often the consumer lag gauges are refreshed (on the event loop, from memory)."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FORWARD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WorkerMetrics:
    """Every ``recprice_`` metric of one worker, in ``registry`` (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.events_ingested = Counter(
            "recprice_events_ingested",
            "Valid events applied to a user's state (duplicates included).",
            registry=registry,
        )
        self.events_rejected = Counter(
            "recprice_events_rejected",
            "Events dead-lettered, by reason class.",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "recprice_dead_letters",
            "Records sent to the dead-letter topic, by the topic they were read from.",
            ["source"],
            registry=registry,
        )
        self.table_writes = Counter(
            "recprice_table_writes",
            "Values stored in a table (each one a changelog record).",
            ["table"],
            registry=registry,
        )
        self.scoring_batch_size = Histogram(
            "recprice_scoring_batch_size",
            "Users scored per forward pass.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.event_to_recommendation = Histogram(
            "recprice_event_to_recommendation_seconds",
            "From the ingest batch that received a user's event to the broker's ack of the "
            "recommendation.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.forward_pass = Histogram(
            "recprice_forward_pass_seconds",
            "One scoring batch through the user tower and the item index, in the model's thread.",
            buckets=FORWARD_BUCKETS,
            registry=registry,
        )
        self.price_decisions = Counter(
            "recprice_price_decisions",
            "Prices decided, by the bound that set them (pricing.policy.Bound).",
            ["bound"],
            registry=registry,
        )
        self.offers = Counter(
            "recprice_offers", "Prices offered, by A/B arm.", ["arm"], registry=registry
        )
        self.conversions = Counter(
            "recprice_conversions",
            "Purchases attributed to an offer, by A/B arm.",
            ["arm"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "recprice_consumer_lag",
            "Records of an assigned input partition not yet committed (end offset - committed).",
            ["topic", "partition"],
            registry=registry,
        )
        self.recovery_in_progress = Gauge(
            "recprice_recovery_in_progress",
            "1 while the worker recovers its tables from their changelogs, else 0.",
            registry=registry,
        )
        self._lagging: set[tuple[str, str]] = set()

    def table_writer(self, table: str) -> Callable[[], None]:
        """Return the call that counts one write to ``table``."""
        return self.table_writes.labels(table=table).inc

    def dead_lettered(self, source: str, error: str) -> None:
        """Count one dead letter read from ``source`` (events: also a rejection by reason)."""
        self.dead_letters.labels(source=source).inc()
        if source == "events":
            self.events_rejected.labels(reason=reject_reason(error)).inc()

    def scored(
        self,
        requests: Iterable[ScoringRequest],
        offers: Mapping[str, int],
        bounds: Mapping[str, int],
        emitted_ms: int,
    ) -> None:
        """Record one scoring batch whose recommendations the broker acked at ``emitted_ms``."""
        size = 0
        for request in requests:
            size += 1
            self.event_to_recommendation.observe(max(emitted_ms - request.received_ms, 0) / 1000)
        self.scoring_batch_size.observe(size)
        for arm, count in offers.items():
            self.offers.labels(arm=arm).inc(count)
        for bound, count in bounds.items():
            self.price_decisions.labels(bound=bound).inc(count)

    def converted(self, arms: Iterable[str]) -> None:
        """Count one conversion for each arm named (one per attributed purchase)."""
        for arm in arms:
            self.conversions.labels(arm=arm).inc()

    def set_lag(self, offsets: Mapping[tuple[str, int], tuple[int | None, int | None]]) -> None:
        """Set each assigned input partition's lag from its (end offset, committed offset).

        A partition no longer assigned, or whose end is not known yet, loses its series.
        """
        lags = {
            (topic, str(partition)): lag
            for (topic, partition), (highwater, committed) in offsets.items()
            if (lag := partition_lag(highwater, committed)) is not None
        }
        for gone in self._lagging - lags.keys():
            self.consumer_lag.remove(*gone)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=partition).set(lag)
        self._lagging = set(lags)
