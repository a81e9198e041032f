"""Tests for arm assignment, the Thompson-sampling bandit and purchase attribution."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.experiments import assign_arm, attribute, thompson_shares
from streams.records.experiment import ArmStats, LastOffer

SHARES = {"gentle": 0.4, "bold": 0.4}


def test_assignment_is_a_stable_hash_not_python_hash():
    # Golden values: Python's salted hash() would change them from process to process.
    got = {u: assign_arm("price-exp-1", u, 0.2, SHARES) for u in ("u1", "u2", "alice", "bob")}
    assert got == {"u1": "gentle", "u2": "bold", "alice": "control", "bob": "bold"}


def test_assignment_depends_on_the_experiment_id():
    users = [f"u{i}" for i in range(200)]
    first = [assign_arm("exp-a", u, 0.2, SHARES) for u in users]
    second = [assign_arm("exp-b", u, 0.2, SHARES) for u in users]
    assert first != second


def test_traffic_follows_the_configured_shares():
    shares = {"a": 0.6, "b": 0.2, "control": 0.99}  # "control" key is ignored
    counts = Counter(assign_arm("exp", f"user-{i}", 0.2, shares) for i in range(20_000))
    fractions = {arm: n / 20_000 for arm, n in counts.items()}
    assert fractions == pytest.approx({"control": 0.2, "a": 0.6, "b": 0.2}, abs=0.015)


def test_moving_arm_shares_never_moves_users_in_or_out_of_control():
    users = [f"user-{i}" for i in range(2_000)]
    before = [assign_arm("exp", u, 0.3, {"a": 0.5, "b": 0.5}) == "control" for u in users]
    after = [assign_arm("exp", u, 0.3, {"a": 0.9, "b": 0.1}) == "control" for u in users]
    assert before == after
    assert 0.25 < sum(before) / len(users) < 0.35


def test_arm_with_zero_share_gets_no_users():
    arms = {assign_arm("exp", f"u{i}", 0.0, {"a": 0.0, "b": 1.0}) for i in range(500)}
    assert arms == {"b"}


@pytest.mark.parametrize(
    ("control_share", "shares"),
    [
        (0.2, {}),
        (0.2, {"a": 0.0}),
        (0.2, {"a": -0.1, "b": 1.0}),
        (0.2, {"a": math.nan}),
        (1.5, SHARES),
    ],
)
def test_assignment_rejects_unusable_shares(control_share, shares):
    with pytest.raises(ValueError):
        # A user whose hash is above any control share, so the arm split is reached.
        assign_arm("price-exp-1", "u1", control_share, shares)


def test_arm_stats_round_trip_through_dicts():
    stats = ArmStats(offers=10, conversions=3, revenue=42.5)
    assert ArmStats.from_dict(stats.to_dict()) == stats
    assert ArmStats.from_dict({}) == ArmStats(0, 0, 0.0)


stats_strategy = st.builds(
    ArmStats,
    offers=st.integers(-5, 10_000),
    conversions=st.integers(-5, 10_000),
    # Corrupt values (NaN, inf, negative) included; finite ones up to a huge catalogue's sales.
    revenue=st.floats(-1e6, 1e12) | st.sampled_from([math.nan, math.inf, -math.inf]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "control"]), stats_strategy),
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, unique=True),
    st.floats(0.0, 0.9),
    st.floats(0.0, 1.0),
)
def test_shares_sum_to_one_and_respect_the_floor_and_control(stats, arms, control, min_frac):
    min_share = (1 - control) / len(arms) * min_frac
    shares = thompson_shares(stats, arms, control, min_share, draws=200)
    assert set(shares) == {"control", *arms}
    assert shares["control"] == control
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(shares[a] >= min_share - 1e-12 for a in arms)


def test_the_arm_earning_more_per_offer_gets_more_traffic():
    stats = {
        # Same conversion rate; "bold" earns twice as much per purchase.
        "gentle": ArmStats(offers=2_000, conversions=100, revenue=1_000.0),
        "bold": ArmStats(offers=2_000, conversions=100, revenue=2_000.0),
    }
    shares = thompson_shares(stats, ["gentle", "bold"], 0.2, 0.05)
    assert shares["bold"] > 0.7
    assert shares["gentle"] == pytest.approx(0.05, abs=0.01)


def test_higher_conversion_wins_when_revenue_per_sale_is_equal():
    stats = {
        "a": ArmStats(offers=1_000, conversions=80, revenue=800.0),
        "b": ArmStats(offers=1_000, conversions=40, revenue=400.0),
    }
    shares = thompson_shares(stats, ["a", "b"], 0.2, 0.05)
    assert shares["a"] > shares["b"]


def test_without_data_the_arms_split_evenly_and_results_are_seeded():
    even = thompson_shares({}, ["a", "b"], 0.2, 0.05, draws=20_000)
    assert even["a"] == pytest.approx(0.4, abs=0.02)
    assert even["b"] == pytest.approx(0.4, abs=0.02)
    stats = {"a": ArmStats(50, 5, 40.0), "b": ArmStats(50, 6, 30.0)}
    assert thompson_shares(stats, ["a", "b"], 0.2, 0.05, seed=7) == thompson_shares(
        stats, ["b", "a"], 0.2, 0.05, seed=7
    )


@pytest.mark.parametrize(
    ("arms", "control", "min_share"),
    [([], 0.2, 0.05), (["control"], 0.2, 0.05), (["a", "b"], 1.0, 0.0), (["a", "b"], 0.2, 0.5)],
)
def test_bandit_rejects_impossible_layouts(arms, control, min_share):
    with pytest.raises(ValueError):
        thompson_shares({}, arms, control, min_share)


OFFER = LastOffer(10.5, ts=1_000_000, arm="bold", policy_version="bounded-v1", base_price=10.0)


@pytest.mark.parametrize(
    ("purchase_ts", "credited"),
    [
        (1_000_000, True),  # same millisecond
        (1_000_000 + 3_600_000, True),  # exactly at the window's end
        (1_000_000 + 3_600_001, False),  # one millisecond too late
        (999_999, False),  # purchase before the offer
    ],
)
def test_attribution_window_edges(purchase_ts, credited):
    assert attribute(OFFER, purchase_ts, window_s=3600.0) == (OFFER if credited else None)


def test_purchase_without_offer_is_not_attributed():
    assert attribute(None, 1_000_000, window_s=3600.0) is None
