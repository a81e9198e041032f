"""A/B experiment mechanics: stable arm assignment, outcome attribution, Thompson bandit.

The stream's outcome agent and the back-test settle offers and purchases into
outcomes with the same functions (`remember_offer`, `settle_purchase`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np

from pricing.config import CONTROL_ARM
from streams.records.experiment import ArmDelta, ArmStats, LastOffer, Outcome
from streams.records.inputs import Event
from streams.records.outputs import PriceUpdate

# Prior on revenue per conversion: inverse-gamma with shape 2 has a finite mean.
_PRIOR_SHAPE = 2.0


def _unit_hash(experiment_id: str, user_id: str) -> float:
    """Map (experiment, user) to a uniform float in [0, 1), identical in every process."""
    digest = hashlib.blake2b(f"{experiment_id}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_arm(
    experiment_id: str, user_id: str, control_share: float, shares: Mapping[str, float]
) -> str:
    """Return the user's arm: a stable hash in [0, 1) below ``control_share`` means control.

    The rest of [0, 1) is split among the non-control arms of ``shares`` (a
    ``"control"`` key there is ignored, so `thompson_shares` output can be passed
    as is) in proportion to their shares, in sorted-name order. Control users sit
    at the bottom of the hash range, so moving the other shares never moves a user
    into or out of control; users near an arm boundary may switch arms when the
    bandit moves shares.
    """
    if not 0.0 <= control_share <= 1.0:
        raise ValueError(f"control_share must be in [0, 1], got {control_share}")
    u = _unit_hash(experiment_id, user_id)
    if u < control_share:
        return CONTROL_ARM
    arms = sorted((name, share) for name, share in shares.items() if name != CONTROL_ARM)
    if any(not (math.isfinite(share) and share >= 0) for _, share in arms):
        raise ValueError(f"shares must be finite and >= 0, got {dict(arms)}")
    total = sum(share for _, share in arms)
    if total <= 0:
        raise ValueError("no non-control arm has a positive share")
    position = (u - control_share) / (1.0 - control_share) * total
    cumulative = 0.0
    for name, share in arms:
        cumulative += share
        if position < cumulative:
            return name
    # Float rounding can leave `position` a hair above the last cumulative sum.
    return next(name for name, share in reversed(arms) if share > 0)


def thompson_shares(
    stats: Mapping[str, ArmStats],
    arms: Sequence[str],
    control_share: float,
    min_share: float,
    *,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Return traffic shares that favour the arm most likely to earn the most per offer.

    Model (per arm): revenue per offer = p * m, with conversion rate
    p ~ Beta(1 + conversions, 1 + offers - conversions) and revenue per
    conversion m = 1/lambda where purchase amounts are exponential with rate
    lambda ~ Gamma(2 + conversions, rate = m0 + revenue). m0, the prior mean of m,
    is the pooled revenue per conversion over all arms (1.0 before any), so the
    prior is on the right currency scale and arms with few sales shrink to it.
    P(arm is best) is estimated from ``draws`` joint samples (ties go to the
    first arm in sorted-name order). Each arm gets ``min_share`` plus its
    P(best) share of what is left of ``1 - control_share``; ``"control"`` keeps
    ``control_share``. Counters are clipped to sane values (0 <= conversions <=
    offers, revenue >= 0) so one corrupt record cannot break the experiment.
    """
    names = sorted(set(arms) - {CONTROL_ARM})
    if not names:
        raise ValueError("need at least one non-control arm")
    if not 0.0 <= control_share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {control_share}")
    free = 1.0 - control_share - min_share * len(names)
    if min_share < 0 or free < -1e-12:
        raise ValueError(f"min_share {min_share} x {len(names)} arms exceeds 1 - control_share")
    free = max(free, 0.0)

    cleaned = [_clean(stats.get(name, ArmStats())) for name in names]
    total_conversions = sum(s.conversions for s in cleaned)
    prior_mean = sum(s.revenue for s in cleaned) / total_conversions if total_conversions else 1.0
    # A pool of zero-revenue sales would make the prior degenerate; any positive scale works.
    prior_mean = prior_mean if prior_mean > 0 else 1.0

    rng = np.random.default_rng(seed)
    samples = np.empty((len(names), draws))
    for row, s in enumerate(cleaned):
        rate = rng.beta(1 + s.conversions, 1 + s.offers - s.conversions, size=draws)
        # m = 1/lambda = (m0 + revenue) / Gamma(shape, 1): an inverse-gamma draw.
        unit_gamma = rng.gamma(_PRIOR_SHAPE + s.conversions, 1.0, size=draws)
        samples[row] = rate * (prior_mean + s.revenue) / unit_gamma
    wins = np.bincount(np.argmax(samples, axis=0), minlength=len(names))
    p_best = wins / draws

    shares = {CONTROL_ARM: control_share}
    shares |= {name: min_share + free * float(p) for name, p in zip(names, p_best, strict=True)}
    return shares


def _clean(stats: ArmStats) -> ArmStats:
    """Clip counters into the ranges the posterior needs."""
    offers = max(int(stats.offers), 0)
    conversions = min(max(int(stats.conversions), 0), offers)
    revenue = stats.revenue if math.isfinite(stats.revenue) and stats.revenue > 0 else 0.0
    return ArmStats(offers=offers, conversions=conversions, revenue=revenue)


def add_stats(stats: ArmStats, delta: ArmDelta) -> ArmStats:
    """Counters after one ``experiment-events`` record (pure)."""
    return ArmStats(
        offers=stats.offers + delta.offers,
        conversions=stats.conversions + delta.conversions,
        revenue=stats.revenue + delta.revenue,
    )


def attribute(latest: LastOffer | None, purchase_ts: int, window_s: float) -> LastOffer | None:
    """Return the offer a purchase is credited to, or None.

    The caller passes the latest offer for the purchase's (user, item). It gets
    the credit if it was made no later than the purchase and at most
    ``window_s`` seconds before it (both ends inclusive).
    """
    if latest is None:
        return None
    age_ms = purchase_ts - latest.ts
    return latest if 0 <= age_ms <= window_s * 1000.0 else None


MAX_OFFERS_PER_USER = 50
"""Items per user whose latest offer is kept for attribution."""


def remember_offer(offers: Mapping[str, LastOffer], update: PriceUpdate) -> dict[str, LastOffer]:
    """Record the newest offer of an item, keeping the user's latest few items (pure)."""
    out = {k: v for k, v in offers.items() if k != update.item_id}
    out[update.item_id] = LastOffer(
        update.price, update.ts, update.arm, update.policy_version, update.base_price
    )
    if len(out) > MAX_OFFERS_PER_USER:
        out = dict(sorted(out.items(), key=lambda kv: kv[1].ts)[-MAX_OFFERS_PER_USER:])
    return out


def settle_purchase(
    offers: Mapping[str, LastOffer], user_id: str, item_id: str, purchase_ts: int, window_s: float
) -> Outcome | None:
    """Return the outcome of a purchase credited to the user's latest offer of the item, or None."""
    offer = attribute(offers.get(item_id), purchase_ts, window_s)
    if offer is None:
        return None
    return Outcome(
        user_id=user_id,
        item_id=item_id,
        arm=offer.arm,
        price=offer.price,
        base_price=offer.base_price,
        offer_ts=offer.ts,
        ts=purchase_ts,
        revenue=offer.price,
        policy_version=offer.policy_version,
    )


def settle_user(
    offers: Mapping[str, LastOffer], inputs: Sequence[PriceUpdate | Event], window_s: float
) -> tuple[dict[str, LastOffer], list[Outcome]]:
    """Apply one user's offers and purchase events in order (pure).

    Return the offers to keep and the outcome of every purchase attributed to
    the latest offer of its item within ``window_s``.
    """
    kept = dict(offers)
    credited: list[Outcome] = []
    for item in inputs:
        if isinstance(item, PriceUpdate):
            kept = remember_offer(kept, item)
        elif outcome := settle_purchase(kept, item.user_id, item.item_id, item.ts, window_s):
            credited.append(outcome)
    return kept, credited
