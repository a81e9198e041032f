"""End to end through Kafka: events -> ingest -> scorer -> recommendations and prices.

One worker with the real model. Every event belongs to a new user, so each
event yields exactly one scored user and events/s compares directly with the
scorer's users/s. Saturation: a backlog of events is produced at once and
the rate is taken between the first and the last scored batch. Right after
the worker stops, the scorer-only reference scores the same users' states
through :mod:`bench.ranker` at the worker's batch size, in this process, so
the two rates of a round are measured a minute apart at most: this machine's
speed drifts over a bench run (bench/RESULTS.md, "How each figure is
measured"). The full plan runs several
rounds, each with a fresh worker and topics, and reports the round with the
median ratio. Latency: in the last round, after saturation, events are paced
at half that round's rate, stamped with their send time, and measured to the
broker timestamp of their recommendation.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kafka import KafkaProducer

from bench.common import median_by, percentile, ratio
from bench.ranker import ScoringPath, SizeResult, paired
from bench.workload import Workload
from encoders.behaviour import StateConfig, apply_with_catalog
from encoders.ranker import ItemIndex, Ranker
from streams.connection import kafka_python_options, security_settings
from streams.offline.deployment import Deployment, unique_prefix
from streams.records.inputs import Event, Item
from streams.records.user_state import UserState
from streams.settings import KafkaSettings


@dataclass(frozen=True)
class SaturationRound:
    """One worker's saturated rate, and the scorer-only rate on its users right after."""

    events_per_s: float
    send_ms: float
    """Mean time the scorer spent sending one saturated batch's outputs."""
    reference: SizeResult

    @property
    def vs_scorer(self) -> float:
        """End-to-end events/s over scorer-only users/s on the same users."""
        return ratio(self.events_per_s, self.reference.scorer_users_per_s)


def median_saturation(rounds: Sequence[SaturationRound]) -> SaturationRound:
    """The round with the median end-to-end/scorer-only ratio, beside its own reference."""
    return median_by(rounds, lambda r: r.vs_scorer, "end-to-end rounds")


@dataclass(frozen=True)
class E2EResult:
    """Saturation rounds, and latency at half load after the last one."""

    events: int
    """Events of each saturation burst."""
    rounds: list[SaturationRound]
    half_load_events_per_s: float
    latencies_ms: list[float]
    scorer_latency_ms: list[float]
    """The worker's own ``latency_ms`` (ingest took the event -> scored)."""
    half_load_mean_batch: float
    max_batch: int
    max_wait_s: float

    @property
    def median(self) -> SaturationRound:
        """The reported round (median ratio)."""
        return median_saturation(self.rounds)

    @property
    def events_per_s(self) -> float:
        """Saturated events/s of the reported round."""
        return self.median.events_per_s

    @property
    def vs_scorer(self) -> float:
        """End-to-end over scorer-only of the reported round."""
        return self.median.vs_scorer

    def latency(self, q: float) -> float:
        """Percentile ``q`` of event-to-recommendation latency at half load, ms."""
        return percentile(self.latencies_ms, q)

    @property
    def p99_target_ms(self) -> float:
        """max_wait + 2x one batch's forward (the p99 bound of bench/RESULTS.md, "Targets").

        The forward time is the last round's: latency was measured on its worker.
        """
        return self.max_wait_s * 1000.0 + 2.0 * self.rounds[-1].reference.forward_ms


def synthetic_events(
    base: Sequence[Event], items: dict[str, Item], n: int, tag: str
) -> list[Event]:
    """``n`` events, each of a new user, copying MovieLens events on catalogue items."""
    usable = [e for e in base if e.item_id in items]
    return [
        replace(usable[k % len(usable)], event_id=f"{tag}-{k}", user_id=f"{tag}{k}")
        for k in range(n)
    ]


def batch_rate(stamps: Sequence[int]) -> float:
    """Users/s from the ``ts`` of each recommendation (one ``ts`` per scored batch).

    The first batch's users are not counted: their work started before the
    first timestamp.
    """
    per_batch = sorted(Counter(stamps).items())
    if len(per_batch) < 2:
        return float("nan")
    users = sum(count for _, count in per_batch[1:])
    return ratio(users, (per_batch[-1][0] - per_batch[0][0]) / 1000.0)


def send_span_ms(stamped: Sequence[tuple[int, dict[str, object]]]) -> float:
    """Mean time from a batch's scores to its last recommendation reaching the producer.

    Every recommendation of a batch carries the batch's ``ts`` (taken right
    after the forward pass); its broker timestamp is when it was sent.
    """
    last: dict[int, int] = {}
    for stamp, record in stamped:
        batch = int(record["ts"])  # type: ignore[call-overload]
        last[batch] = max(last.get(batch, stamp), stamp)
    return ratio(sum(stamp - batch for batch, stamp in last.items()), len(last))


def _states(
    events: Sequence[Event], items: dict[str, Item], config: StateConfig
) -> list[tuple[str, UserState]]:
    return [(e.user_id, apply_with_catalog(UserState(), e, items, config)) for e in events]


def _saturate(
    dep: Deployment, sat: Sequence[Event], log: Callable[[str], None]
) -> tuple[float, float]:
    """Produce ``sat`` at once to a warmed-up worker; return (events/s, send ms per batch)."""
    now = int(time.time() * 1000)
    dep.send(dep.topics.events, [replace(e, ts=now).to_json() for e in sat])
    dep.wait_count(dep.topics.recommendations, 1 + len(sat), 600)
    stamped = [
        (stamp, r)
        for stamp, r in dep.read(dep.topics.recommendations)
        if str(r["user_id"]).startswith("s")
    ]
    rate = batch_rate([int(r["ts"]) for _, r in stamped])  # type: ignore[call-overload]
    send_ms = send_span_ms(stamped)
    log(
        f"  saturation: {len(stamped)} users scored, {rate:.1f} events/s, "
        f"mean batch {ratio(len(stamped), len({r['ts'] for _, r in stamped})):.1f}, "
        f"sending a batch's outputs took {send_ms:.0f} ms"
    )
    return rate, send_ms


@dataclass(frozen=True)
class HalfLoad:
    """Paced events after saturation, and their latencies."""

    offered: float
    latencies_ms: list[float]
    own_ms: list[float]
    mean_batch: float


def _half_load(
    dep: Deployment,
    paced: Sequence[Event],
    rate: float,
    already: int,
    log: Callable[[str], None],
) -> HalfLoad:
    """Send ``paced`` at ``rate``/s, each stamped with its send time, and time its recommendation.

    ``already`` is how many recommendations the topic holds before these.
    """
    sent_ms: dict[str, int] = {}
    prod = KafkaProducer(**kafka_python_options(dep.settings.kafka), linger_ms=0)
    t0 = time.monotonic()
    for k, event in enumerate(paced):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ts = int(time.time() * 1000)
        sent_ms[event.event_id] = ts
        prod.send(
            dep.topics.events.name,
            key=event.user_id.encode(),
            value=replace(event, ts=ts).to_json(),
            timestamp_ms=ts,
        )
    prod.flush()
    prod.close()
    offered = ratio(len(paced), time.monotonic() - t0)
    dep.wait_count(dep.topics.recommendations, already + len(paced), 600)
    late = [
        (stamp, r)
        for stamp, r in dep.read(dep.topics.recommendations)
        if str(r["user_id"]).startswith("h")
    ]
    latencies = [float(stamp - sent_ms[str(r["trigger_event_id"])]) for stamp, r in late]
    own = [float(r["latency_ms"]) for _, r in late]  # type: ignore[arg-type]
    batches = Counter(int(r["ts"]) for _, r in late)  # type: ignore[call-overload]
    mean_batch = ratio(len(late), len(batches))
    log(
        f"  half load: {offered:.1f} events/s offered, {len(late)} recommendations, "
        f"mean batch {mean_batch:.1f}, p99 {percentile(latencies, 99):.0f} ms"
    )
    return HalfLoad(offered, latencies, own, mean_batch)


def run_e2e(
    kafka: KafkaSettings,
    ranker: Ranker,
    index: ItemIndex,
    workload: Workload,
    catalog: dict[str, Item],
    saturation_events: int,
    half_load_s: float,
    reference_budget_s: float,
    rounds: int = 1,
    log: Callable[[str], None] = print,
) -> E2EResult:
    """Run ``rounds`` saturation rounds, each with its reference; half load after the last."""
    if rounds < 1:
        raise ValueError(f"need at least one end-to-end round, got {rounds}")
    sat = synthetic_events(workload.events, catalog, saturation_events, "s")
    ref_workload = Workload(catalog, _states(sat, catalog, workload.config), [], workload.config)
    path = ScoringPath(ranker, index, ref_workload, catalog)
    done: list[SaturationRound] = []
    half: HalfLoad | None = None
    for round_no in range(1, rounds + 1):
        with tempfile.TemporaryDirectory(prefix="recprice-bench-e2e-") as tmp:
            dep = Deployment(
                kafka.bootstrap,
                Path(tmp),
                prefix=unique_prefix("bench"),
                kafka=dict(security_settings(kafka)),
            )
            max_batch, max_wait = dep.settings.scorer.max_batch, dep.settings.scorer.max_wait_s
            try:
                dep.create()
                items = [i.to_json() for i in catalog.values()]
                dep.send(dep.topics.items, items, key_field="item_id")
                dep.start_worker()
                warm = synthetic_events(workload.events, catalog, 1, "warm")[0]
                dep.send_raw(dep.topics.events, [(warm.user_id.encode(), warm.to_json())])
                started = time.monotonic()
                if dep.wait_count(dep.topics.recommendations, 1, 600) < 1:
                    raise RuntimeError(f"worker never recommended:\n{dep.log()}")
                log(
                    f"  round {round_no}/{rounds}: worker ready in "
                    f"{time.monotonic() - started:.0f} s; {len(sat)} events at once"
                )
                rate, send_ms = _saturate(dep, sat, log)
                if round_no == rounds:
                    count = max(int(rate / 2.0 * half_load_s), 10)
                    paced = synthetic_events(workload.events, catalog, count, "h")
                    half = _half_load(dep, paced, rate / 2.0, 1 + len(sat), log)
            finally:
                dep.close()
        # The same users' states, scored in this process with the worker gone.
        reference = paired(path, ref_workload.states, max_batch, reference_budget_s)
        log(
            f"  scorer-only on the same users at batch {max_batch}: "
            f"{reference.scorer_users_per_s:.1f} users/s, forward {reference.forward_ms:.0f} ms; "
            f"end to end at {ratio(rate, reference.scorer_users_per_s):.2f}x"
        )
        done.append(SaturationRound(rate, send_ms, reference))
    assert half is not None
    return E2EResult(
        len(sat),
        done,
        half.offered,
        half.latencies_ms,
        half.own_ms,
        half.mean_batch,
        max_batch,
        max_wait,
    )
