"""Offline back-test: replay an event log through the production pricing path.

Events are replayed in time order (ties in log order) through the very
functions the stream runs: `apply_event` -> `scoring_inputs` ->
`Ranker.recommend` in micro-batches (deduplicated by `latest_per_user`)
-> `pricing.offers.price_items` with a `PriceMemory` (bounded per user like the
stream's ``shown_prices`` table). The demand simulator
(`pricing.simulator`) then decides whether the user buys each offer; a
purchase is credited by the outcome agent's own `pricing.experiments.remember_offer`
and `settle_purchase` to the latest offer of its (user, item), per-arm `ArmStats`
accumulate, and every
``share_update_every`` offers `thompson_shares` recomputes the traffic shares
(control fixed, a minimum per arm) that `price_items` assigns users with.

What differs from the stream, and why:

* Micro-batches close on size only (``max_batch`` scoring requests), not on a
  wall-clock wait, since log time has no wall clock. As in the stream, a user
  with several requests in one batch is scored once, on the newest state.
  MovieLens users rate in bursts, so a log needs far fewer scorings than it
  has events (docs/architecture.md, "Where an event goes").
  ``score_every`` > 1 scores a user only after every K-th event of theirs, to
  make slow models (MiniLM on a CPU) affordable on long logs.
* Time is the log's: an offer carries the ``ts`` of the event that triggered
  it, and a simulated buyer decides on sight, so the purchase ``ts`` equals the
  offer's. A user buys an item at most once; later offers of a bought item are
  still made and counted (the log, not the simulation, drives user state).

Every offer is audited against its guardrails as it is made (see
`bound_violations`); the run's count of violations must be 0.

Outputs (``out`` folder): ``price_updates.jsonl`` (docs/architecture.md, "Records"; from
`Decision.to_record`), ``recommendations.jsonl``, ``outcomes.jsonl``
(attributed purchases), ``shares.jsonl`` (traffic shares after each bandit
update, the initial shares first) and ``summary.json``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import orjson
from tqdm import tqdm

from encoders.behaviour import StateConfig, apply_with_catalog, scoring_inputs
from encoders.ranker import Ranker
from pricing.config import CONTROL_ARM, Guardrails, PricingConfig
from pricing.experiments import remember_offer, settle_purchase, thompson_shares
from pricing.offers import price_items
from pricing.policy import Decision
from pricing.shown_prices import DEFAULT_PER_USER, PriceMemory
from pricing.simulator import DemandConfig, TrueInterest, buys
from streams.records.experiment import ArmStats, LastOffer, SharesSnapshot
from streams.records.inputs import Event, Item, item_titles
from streams.records.json_record import JsonRecord
from streams.records.outputs import Recommendation
from streams.records.scoring import ScoringRequest, latest_per_user
from streams.records.shown_prices import ShownPrice
from streams.records.user_state import UserState


@dataclass(frozen=True)
class BacktestConfig:
    """How the replay is run (the model, state, pricing and demand configs come separately)."""

    score_every: int = 1
    """Score a user after every K-th event of theirs (1 = after each, like the stream)."""
    max_batch: int = 64
    """Scoring requests per micro-batch, as the stream's ``scorer.max_batch``."""
    max_offers: int | None = None
    """Stop at the first micro-batch boundary at or after this many offers."""
    share_update_every: int = 2000
    """Offers between two bandit updates of the traffic shares."""
    bandit_draws: int = 2000
    """Posterior draws per bandit update."""
    shown_prices_per_user: int = DEFAULT_PER_USER
    """Items per user whose last shown price is kept, as ``scorer.shown_prices_per_user``."""
    progress: bool = False
    """Show a tqdm progress bar over events (on a terminal only)."""

    def __post_init__(self) -> None:
        """Reject settings that would stall or never update the replay."""
        if self.score_every < 1 or self.max_batch < 1 or self.share_update_every < 1:
            raise ValueError("score_every, max_batch and share_update_every must be >= 1")
        if self.max_offers is not None and self.max_offers < 1:
            raise ValueError("max_offers must be >= 1")
        if self.shown_prices_per_user < 1:
            raise ValueError("shown_prices_per_user must be >= 1")


@dataclass
class BacktestResult:
    """Counts of one back-test run, as written to ``summary.json``."""

    events: int = 0
    duplicate_events: int = 0
    scorings: int = 0
    batches: int = 0
    offers: int = 0
    purchases: int = 0
    revenue: float = 0.0
    out_of_bounds: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    share_updates: int = 0
    seconds: float = 0.0


def bound_violations(
    decision: Decision, item: Item, guard: Guardrails, previous: float | None
) -> list[str]:
    """Return the guardrails ``decision.price`` breaks (empty when it is in bounds).

    Checked independently of the policy's own arithmetic: a finite positive
    price inside the decision's own ``[floor, ceiling]``, the item's floor and
    ceiling, ``base * (1 ± max_deviation)``, and at most ``max_step`` from the
    previous price shown. The step rule is only enforced when the previous
    price lies inside the hard band: otherwise the policy documents that the
    step yields to the band.
    """
    price = decision.price
    if not (math.isfinite(price) and price > 0):
        return ["not_finite"]
    broken = []
    if not decision.floor <= price <= decision.ceiling:
        broken.append("decision_band")
    if item.floor is not None and price < item.floor:
        broken.append("item_floor")
    if item.ceiling is not None and price > item.ceiling:
        broken.append("item_ceiling")
    band_low = item.base_price * (1 - guard.max_deviation)
    band_high = item.base_price * (1 + guard.max_deviation)
    if not band_low <= price <= band_high:
        broken.append("deviation")
    hard_low = max(band_low, item.floor if item.floor is not None else band_low)
    hard_high = min(band_high, item.ceiling if item.ceiling is not None else band_high)
    if (
        previous is not None
        and hard_low <= previous <= hard_high
        and not previous * (1 - guard.max_step) <= price <= previous * (1 + guard.max_step)
    ):
        broken.append("step")
    return broken


class _Writer:
    """The run's JSONL outputs, one buffered handle each."""

    NAMES = ("price_updates", "recommendations", "outcomes", "shares")

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {
            name: (out / f"{name}.jsonl").open("wb") for name in self.NAMES
        }

    def write(self, name: str, record: JsonRecord) -> None:
        self._files[name].write(record.to_json() + b"\n")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


class _Replay:
    """Mutable state of one back-test: user states, prices shown, stats, shares."""

    def __init__(
        self,
        items: Sequence[Item],
        ranker: Ranker,
        state_config: StateConfig,
        pricing: PricingConfig,
        demand: DemandConfig,
        truth: Callable[[str, str], float],
        config: BacktestConfig,
        writer: _Writer,
    ) -> None:
        self.items = {item.item_id: item for item in items}
        self.ranker = ranker
        self.index = ranker.build_index([(i.item_id, i.text()) for i in self.items.values()])
        self.state_config = state_config
        self.pricing = pricing
        self.demand = demand
        self.truth = truth
        self.config = config
        self.writer = writer
        self.memory = PriceMemory(config.shown_prices_per_user)
        self.offers: dict[str, dict[str, LastOffer]] = {}
        """Each user's latest offers, as the outcome agent's ``last_offers`` table keeps them."""
        self.bought: set[tuple[str, str]] = set()
        self.arm_names = [CONTROL_ARM] + [arm.name for arm in pricing.arms]
        self.stats = {name: ArmStats() for name in self.arm_names}
        self.shares = pricing.initial_shares()
        self.since_update = 0
        self.violations: Counter[str] = Counter()
        self.result = BacktestResult()
        self._log_shares(ts=None)

    def score(self, pending: list[ScoringRequest]) -> None:
        """Score one micro-batch, price its users and let the simulated buyers react."""
        requests = latest_per_user(pending)
        states = [r.state for r in requests]
        inputs = scoring_inputs(states, item_titles(self.items), self.state_config)
        ranked = self.ranker.recommend(*inputs, self.index)
        self.result.batches += 1
        self.result.scorings += len(requests)
        for request, user_ranked in zip(requests, ranked, strict=True):
            self.writer.write(
                "recommendations",
                Recommendation.of(
                    request, user_ranked, self.ranker.model_version, request.event_ts
                ),
            )
            shown = self.memory.of(request.user_id)
            _, decisions = price_items(
                request.user_id,
                user_ranked,
                self.items,
                shown,
                self.shares,
                self.pricing,
                request.event_ts / 1000,
            )
            for decision in decisions:
                self.offer(request.user_id, decision, request.event_ts, shown.get(decision.item_id))
            self.memory.remember(
                request.user_id,
                [(d.item_id, d.price) for d in decisions],
                request.event_ts / 1000,
            )
            if self.since_update >= self.config.share_update_every:
                self.update_shares(request.event_ts)

    def offer(self, user_id: str, decision: Decision, ts: int, shown: ShownPrice | None) -> None:
        """Show one price: audit it against the one ``shown`` before, count it, ask the buyer."""
        item = self.items[decision.item_id]
        previous = shown.price if shown is not None else None
        broken = bound_violations(
            decision, item, self.pricing.guardrails_for(item.category), previous
        )
        self.violations.update(broken)
        self.result.out_of_bounds += bool(broken)
        update = decision.to_record(user_id, ts)
        self.writer.write("price_updates", update)
        offers = remember_offer(self.offers.get(user_id, {}), update)
        self.offers[user_id] = offers
        key = (user_id, decision.item_id)
        self.stats[decision.arm].offers += 1
        self.result.offers += 1
        self.since_update += 1
        if key in self.bought:
            return
        interest = self.truth(user_id, decision.item_id)
        if not buys(
            user_id, decision.item_id, decision.price, item.base_price, interest, self.demand
        ):
            return
        outcome = settle_purchase(
            offers, user_id, decision.item_id, ts, self.pricing.attribution_window_s
        )
        if outcome is None:
            return
        self.bought.add(key)
        stats = self.stats[outcome.arm]
        stats.conversions += 1
        stats.revenue += outcome.revenue
        self.result.purchases += 1
        self.result.revenue += outcome.revenue
        self.writer.write("outcomes", outcome)

    def update_shares(self, ts: int) -> None:
        """Let the bandit move traffic between the non-control arms."""
        self.result.share_updates += 1
        self.shares = thompson_shares(
            self.stats,
            [arm.name for arm in self.pricing.arms],
            self.pricing.control_share,
            self.pricing.min_arm_share,
            draws=self.config.bandit_draws,
            seed=self.demand.seed * 1_000_003 + self.result.share_updates,
        )
        self.since_update = 0
        self._log_shares(ts)

    def _log_shares(self, ts: int | None) -> None:
        snapshot = SharesSnapshot.of(self.result.share_updates, ts, self.shares, self.stats)
        self.writer.write("shares", snapshot)


def _events_with_progress(events: Sequence[Event], show: bool) -> Iterator[Event]:
    if not show:
        yield from events
        return
    with tqdm(total=len(events), unit="ev", desc="backtest", disable=None) as bar:
        for event in events:
            yield event
            bar.update(1)


def run_backtest(
    events: Sequence[Event],
    items: Sequence[Item],
    ranker: Ranker,
    out: Path,
    *,
    state_config: StateConfig,
    pricing: PricingConfig,
    demand: DemandConfig,
    config: BacktestConfig,
    truth: Callable[[str, str], float] | None = None,
) -> BacktestResult:
    """Replay ``events`` (already in time order) and write the outputs under ``out``.

    ``truth(user_id, item_id)`` is the held-out interest the simulated buyers
    act on; by default it is `TrueInterest` over the same ``events``.
    """
    started = time.perf_counter()
    truth = truth or TrueInterest(events, demand.unseen_interest)
    writer = _Writer(out)
    try:
        replay = _Replay(items, ranker, state_config, pricing, demand, truth, config, writer)
        states: dict[str, UserState] = {}
        since: Counter[str] = Counter()
        pending: list[ScoringRequest] = []
        for event in _events_with_progress(events, config.progress):
            before = states.get(event.user_id, UserState())
            state = apply_with_catalog(before, event, replay.items, state_config)
            replay.result.events += 1
            if state is before:
                replay.result.duplicate_events += 1
                continue
            states[event.user_id] = state
            since[event.user_id] += 1
            if since[event.user_id] < config.score_every:
                continue
            since[event.user_id] = 0
            pending.append(ScoringRequest(event.user_id, state, event.event_id, event.ts, event.ts))
            if len(pending) >= config.max_batch:
                replay.score(pending)
                pending = []
                if config.max_offers is not None and replay.result.offers >= config.max_offers:
                    break
        if pending:
            replay.score(pending)
    finally:
        writer.close()
    result = replay.result
    result.violations = dict(replay.violations)
    result.arms = {name: stats.to_dict() for name, stats in replay.stats.items()}
    result.shares = replay.shares
    result.seconds = time.perf_counter() - started
    (out / "summary.json").write_bytes(
        orjson.dumps(
            {
                "result": asdict(result),
                "backtest": asdict(config),
                "demand": demand.model_dump(),
                "pricing": pricing.model_dump(),
                "model_version": ranker.model_version,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    return result
