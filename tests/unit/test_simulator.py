"""Tests for the demand simulator: determinism, monotonicity, the documented distribution."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pricing.simulator import (
    DemandConfig,
    TrueInterest,
    attention,
    buyer_draw,
    buys,
    rating_interest,
    willingness_to_pay,
)
from streams.records.inputs import Event

ids = st.text(min_size=1, max_size=8)
prices = st.floats(min_value=0.01, max_value=1000, allow_nan=False)
interests = st.floats(min_value=0.0, max_value=1.0)


def test_draws_are_fixed_per_seed_user_and_item():
    first = [buyer_draw(7, f"u{i}", "item") for i in range(5)]
    # Another order, same answers: a draw never depends on what was asked before.
    again = [buyer_draw(7, f"u{i}", "item") for i in reversed(range(5))][::-1]
    assert first == again
    assert buyer_draw(8, "u0", "item") != first[0]
    assert buyer_draw(7, "u0", "other") != first[0]


@given(ids, ids, prices, prices, prices, interests)
def test_a_lower_price_never_loses_a_buyer(user, item, base, p1, p2, interest):
    config = DemandConfig(seed=3)
    low, high = sorted((p1, p2))
    if buys(user, item, high, base, interest, config):
        assert buys(user, item, low, base, interest, config)


@given(ids, ids, prices, interests, interests)
def test_willingness_to_pay_rises_with_interest(user, item, base, i1, i2):
    config = DemandConfig()
    draw = buyer_draw(0, user, item)
    low, high = sorted((i1, i2))
    assert willingness_to_pay(base, low, draw, config) <= willingness_to_pay(
        base, high, draw, config
    )
    assert attention(low, config) <= attention(high, config)


def test_purchase_rate_matches_the_documented_lognormal():
    # Everyone attentive, neutral interest: P(buy at base * e^(k*sigma)) = 1 - Phi(k).
    config = DemandConfig(attention_base=1.0, attention_slope=0.0, wtp_sigma=0.3)
    n = 4000
    for k in (-1.0, 0.0, 1.0):
        price = 10.0 * math.exp(k * config.wtp_sigma)
        rate = sum(buys(f"u{i}", "x", price, 10.0, 0.5, config) for i in range(n)) / n
        assert rate == pytest.approx(1 - NormalDist().cdf(k), abs=0.03)


def test_attention_gates_the_purchase_rate():
    config = DemandConfig(attention_base=0.1, attention_slope=0.0, wtp_log_mean=5.0)
    # WTP is ~150x the base price, so only attention decides.
    rate = sum(buys(f"u{i}", "x", 10.0, 10.0, 0.5, config) for i in range(4000)) / 4000
    assert rate == pytest.approx(0.1, abs=0.02)


def test_true_interest_reads_the_whole_log():
    events = [
        Event("1", "click", "u", "a", 1),
        Event("2", "purchase", "u", "a", 2),
        Event("3", "click", "u", "b", 3, rating=5.0),
        Event("4", "click", "u", "b", 4, rating=2.0),
        Event("5", "view", "u", "c", 5),
    ]
    truth = TrueInterest(events, unseen_interest=0.1)
    assert truth("u", "a") == 0.9  # strongest unrated type
    assert truth("u", "b") == rating_interest(2.0) == 0.25  # the later rating wins
    assert truth("u", "c") == 0.4
    assert truth("u", "zzz") == 0.1
    assert truth("other", "a") == 0.1
    assert len(truth) == 3


def test_ratings_map_linearly_and_clamp():
    assert [rating_interest(r) for r in (1, 3, 5, 0, 9)] == [0.0, 0.5, 1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "bad", [{"wtp_sigma": -0.1}, {"attention_base": 1.5}, {"wtp_log_mean": math.inf}, {"x": 1}]
)
def test_config_is_checked_at_load_time(bad):
    with pytest.raises(ValidationError):
        DemandConfig(**bad)
