"""Property and edge tests for the bounded price policy (README.md, "Pricing")."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pricing.config import ArmConfig, Guardrails, PricingConfig
from pricing.policy import PricedItem, decide, interest_from_scores
from pricing.rounding import round_to_unit, round_within

PROPERTY = settings(max_examples=300, deadline=None)

NASTY_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300, -1e300])


@st.composite
def items(draw: st.DrawFn) -> PricedItem:
    base = draw(st.floats(min_value=0.0, max_value=1e6, exclude_min=True))
    floor = draw(st.none() | st.floats(0.0, 1.0).map(lambda f: base * f))
    ceiling = draw(st.none() | st.floats(1.0, 10.0).map(lambda f: base * f))
    category = draw(st.sampled_from([None, "books", "games"]))
    return PricedItem("item", base, floor=floor, ceiling=ceiling, category=category)


guardrails = st.builds(
    Guardrails,
    max_deviation=st.floats(0.0, 1.0, exclude_max=True),
    max_step=st.floats(0.0, 2.0),
    cooldown_s=st.sampled_from([0.0, 60.0]),
    minor_unit=st.sampled_from([0.01, 0.05, 1.0, 100.0, 1e-9]) | st.floats(1e-6, 10.0),
)
configs = st.builds(
    PricingConfig,
    guardrails=guardrails,
    category_guardrails=st.dictionaries(st.sampled_from(["books", "games"]), guardrails),
)
arms = st.none() | st.builds(
    ArmConfig, name=st.just("arm"), strength=st.floats(0.0, 1.0), share=st.just(0.8)
)
interests = st.floats() | NASTY_FLOATS
# Previous prices: absent, garbage, or plausible (often near the base price, sometimes far).
previous_prices = (
    st.none() | NASTY_FLOATS | st.floats(min_value=1e-6, max_value=1e7) | st.floats(0.5, 1.5)
)
times = st.none() | st.floats(-1e3, 1e3) | st.just(math.nan)


def hard_band(item: PricedItem, config: PricingConfig) -> tuple[float, float]:
    """Recompute the floor/ceiling ∩ deviation band independently of the policy."""
    dev = config.guardrails_for(item.category).max_deviation
    low = max(base_low := item.base_price * (1 - dev), item.floor or base_low)
    high = min(item.base_price * (1 + dev), item.ceiling if item.ceiling is not None else math.inf)
    return low, high


@PROPERTY
@given(items(), interests, previous_prices, arms, configs, times)
def test_price_is_finite_positive_and_inside_every_bound(
    item, interest, previous, arm, config, last
):
    # Relative previous prices (0.5..1.5) are meant around the base; scale them.
    if previous is not None and 0.5 <= previous <= 1.5:
        previous *= item.base_price
    d = decide(item, interest, previous, arm, config, now_s=0.0, last_change_s=last)
    assert math.isfinite(d.price) and d.price > 0
    assert d.floor <= d.price <= d.ceiling
    low, high = hard_band(item, config)
    assert low <= d.floor <= d.ceiling <= high
    assert 0.0 <= d.interest <= 1.0
    assert d.previous_price is None or (math.isfinite(d.previous_price) and d.previous_price > 0)
    assert d.bound in {"none", "floor", "ceiling", "deviation", "step", "cooldown", "control"}


@PROPERTY
@given(items(), interests, st.floats(0.0, 1.0), arms, configs, times)
def test_price_moves_at_most_max_step_from_a_previous_price_inside_the_band(
    item, interest, where, arm, config, last
):
    low, high = hard_band(item, config)
    # low + (high - low) * 1.0 can round one ulp above high, outside the band, where the
    # policy lets the step yield to the band; the property is about prices inside it.
    previous = min(low + (high - low) * where, high)
    assume(previous > 0)  # the low edge of a subnormal band can underflow to 0.0
    d = decide(item, interest, previous, arm, config, now_s=0.0, last_change_s=last)
    step = config.guardrails_for(item.category).max_step
    # Exact form of |price / previous - 1| <= max_step: the policy clamps to these very
    # products, whereas the ratio loses precision for subnormal prices.
    assert previous * (1 - step) <= d.price <= previous * (1 + step)


@PROPERTY
@given(
    items(),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    arms,
    configs,
    st.sampled_from([None, 0.95, 3.0]),
)
def test_price_is_monotone_in_interest_within_an_arm(item, a, b, arm, config, previous_factor):
    previous = None if previous_factor is None else item.base_price * previous_factor
    lower, higher = sorted((a, b))
    d_low = decide(item, lower, previous, arm, config)
    d_high = decide(item, higher, previous, arm, config)
    assert d_low.price <= d_high.price


@PROPERTY
@given(items(), interests, previous_prices, arms, configs, times)
def test_identical_inputs_give_identical_decisions(item, interest, previous, arm, config, last):
    first = decide(item, interest, previous, arm, config, now_s=5.0, last_change_s=last)
    second = decide(item, interest, previous, arm, config, now_s=5.0, last_change_s=last)
    assert first == second
    assert first.to_record("u", 1).to_dict() == second.to_record("u", 1).to_dict()


MONEY = ("price", "base_price", "floor", "ceiling", "previous_price")
# Units whose multiples print exactly, so "on the grid" can be checked on the decimal text.
DECIMAL_UNITS = st.sampled_from([0.01, 0.05, 0.1, 1.0, 100.0])
decimal_guardrails = st.builds(
    Guardrails,
    max_deviation=st.floats(0.0, 1.0, exclude_max=True),
    max_step=st.floats(0.0, 2.0),
    cooldown_s=st.sampled_from([0.0, 60.0]),
    minor_unit=DECIMAL_UNITS,
)
decimal_configs = st.builds(
    PricingConfig,
    guardrails=decimal_guardrails,
    category_guardrails=st.dictionaries(st.sampled_from(["books", "games"]), decimal_guardrails),
)


def scaled_previous(previous: float | None, item: PricedItem) -> float | None:
    """Relative previous prices (0.5..1.5) are meant around the base; scale them."""
    if previous is not None and 0.5 <= previous <= 1.5:
        return previous * item.base_price
    return previous


@PROPERTY
@given(items(), interests, previous_prices, arms, configs, times)
def test_published_records_keep_the_price_inside_the_published_bounds(
    item, interest, previous, arm, config, last
):
    previous = scaled_previous(previous, item)
    d = decide(item, interest, previous, arm, config, now_s=0.0, last_change_s=last)
    record = d.to_record("u", 1).to_dict()
    assert record["floor"] <= record["price"] <= record["ceiling"]
    assert record["personalized"] is (arm is not None)


@PROPERTY
@given(items(), interests, previous_prices, arms, decimal_configs, times)
def test_published_money_is_the_nearest_multiple_of_the_minor_unit(
    item, interest, previous, arm, config, last
):
    previous = scaled_previous(previous, item)
    d = decide(item, interest, previous, arm, config, now_s=0.0, last_change_s=last)
    record = d.to_record("u", 1).to_dict()
    unit = config.guardrails_for(item.category).minor_unit
    exact = {
        "price": d.price,
        "base_price": d.base_price,
        "floor": d.floor,
        "ceiling": d.ceiling,
        "previous_price": d.previous_price,
    }
    for field in MONEY:
        if field not in record or exact[field] / unit >= 2**52:
            continue  # floats cannot hold the grid there; the value is published as it is
        published = record[field]
        assert Decimal(repr(published)) % Decimal(repr(unit)) == 0, (field, published)
        assert abs(published - exact[field]) <= unit / 2 + 1e-9 * exact[field], field
    assert record["floor"] <= record["price"] <= record["ceiling"]


cents = st.integers(1, 10**8).map(lambda k: k / 100)


@PROPERTY
@given(
    cents,
    st.none() | st.floats(0.0, 1.0),
    st.none() | st.floats(1.0, 10.0),
    interests,
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_control_shows_the_base_price_and_is_not_personalized(
    base, floor_factor, ceiling_factor, interest, deviation
):
    item = PricedItem(
        "i",
        base,
        floor=None if floor_factor is None else base * floor_factor,
        ceiling=None if ceiling_factor is None else base * ceiling_factor,
    )
    config = PricingConfig(guardrails=Guardrails(max_deviation=deviation))
    record = decide(item, interest, None, None, config).to_record("u", 1).to_dict()
    assert record["arm"] == "control" and record["personalized"] is False
    assert record["price"] == record["base_price"] == base


@PROPERTY
@given(items(), interests, previous_prices, configs, times)
def test_control_is_never_disclosed_as_personalized(item, interest, previous, config, last):
    d = decide(item, interest, previous, None, config, now_s=0.0, last_change_s=last)
    assert d.to_record("u", 1).to_dict()["personalized"] is False


@PROPERTY
@given(
    st.floats(-1e9, 1e9),
    st.floats(-1e9, 1e9),
    st.sampled_from([0.01, 0.05, 1.0, 100.0]) | st.floats(1e-6, 10.0),
)
def test_rounding_to_the_unit_is_monotone(a, b, unit):
    low, high = sorted((a, b))
    assert round_to_unit(low, unit) <= round_to_unit(high, unit)


BOLD = ArmConfig(name="bold", strength=1.0, share=0.4)
GENTLE = ArmConfig(name="gentle", strength=0.5, share=0.4)
CONFIG = PricingConfig()  # deviation 0.2, step 0.1, no cool-down, cents


@pytest.mark.parametrize(
    ("arm", "interest", "expected"),
    [
        (BOLD, 1.0, 12.0),
        (BOLD, 0.0, 8.0),
        (BOLD, 0.5, 10.0),
        (GENTLE, 0.75, 10.5),
        (GENTLE, 0.83, 10.66),
    ],
)
def test_golden_prices_without_history(arm, interest, expected):
    d = decide(PricedItem("i", 10.0), interest, None, arm, CONFIG)
    assert d.price == expected
    assert (d.floor, d.ceiling, d.bound) == (8.0, 12.0, "none")


@pytest.mark.parametrize(
    ("interest", "expected"),
    [(math.nan, 10.0), (math.inf, 12.0), (-math.inf, 8.0), (1e300, 12.0), (-5.0, 8.0)],
)
def test_nan_interest_is_neutral_and_others_are_clamped(interest, expected):
    d = decide(PricedItem("i", 10.0), interest, None, BOLD, CONFIG)
    assert d.price == expected
    assert 0.0 <= d.interest <= 1.0


@pytest.mark.parametrize(
    ("item", "interest", "price", "bound", "note"),
    [
        (PricedItem("i", 10.0, floor=9.5), 0.0, 9.5, "floor", "capped by item floor"),
        (PricedItem("i", 10.0, ceiling=10.8), 1.0, 10.8, "ceiling", "capped by item ceiling"),
    ],
)
def test_item_bounds_win_and_are_named(item, interest, price, bound, note):
    d = decide(item, interest, None, BOLD, CONFIG)
    assert (d.price, d.bound) == (price, bound)
    assert note in d.reason


def test_step_caps_the_move_from_the_previous_price():
    d = decide(PricedItem("i", 10.0), 1.0, 10.0, BOLD, CONFIG)
    assert (d.price, d.floor, d.ceiling, d.bound) == (11.0, 9.0, 11.0, "step")
    assert d.reason == "interest 1.00 in arm bold raised price 10.0% vs base (capped by max step)"


@pytest.mark.parametrize(("previous", "edge"), [(20.0, 12.0), (2.0, 8.0)])
def test_step_yields_to_the_hard_band_when_they_do_not_meet(previous, edge):
    d = decide(PricedItem("i", 10.0), 0.5, previous, BOLD, CONFIG)
    assert (d.price, d.floor, d.ceiling, d.bound) == (edge, edge, edge, "step")
    assert "step relaxed" in d.reason


@pytest.mark.parametrize("previous", [math.nan, math.inf, 0.0, -3.0])
def test_invalid_previous_price_is_ignored(previous):
    d = decide(PricedItem("i", 10.0), 1.0, previous, BOLD, CONFIG)
    assert (d.price, d.previous_price) == (12.0, None)
    assert "previous_price" not in d.to_record("u", 1).to_dict()


def test_control_shows_the_base_price_whatever_the_interest():
    prices = {decide(PricedItem("i", 19.99), i, None, None, CONFIG).price for i in (0.0, 0.5, 1.0)}
    assert prices == {19.99}
    d = decide(PricedItem("i", 19.99), 1.0, None, None, CONFIG)
    assert (d.arm, d.bound) == ("control", "control")


COOL = PricingConfig(guardrails=Guardrails(cooldown_s=60.0))


@pytest.mark.parametrize("last_change_s", [950.0, 1000.0, math.nan])
def test_cooldown_holds_the_previous_price(last_change_s):
    d = decide(
        PricedItem("i", 10.0), 1.0, 10.37, BOLD, COOL, now_s=1000.0, last_change_s=last_change_s
    )
    assert (d.price, d.bound) == (10.37, "cooldown")


@pytest.mark.parametrize("last_change_s", [940.0, None])
def test_price_moves_once_the_cooldown_is_over(last_change_s):
    d = decide(
        PricedItem("i", 10.0), 1.0, 10.37, BOLD, COOL, now_s=1000.0, last_change_s=last_change_s
    )
    assert (d.price, d.bound) == (11.4, "step")  # 10.37 * 1.1 = 11.407, rounded inward


def test_cooldown_still_respects_the_hard_band_after_a_base_change():
    d = decide(
        PricedItem("i", 10.0, ceiling=10.2), 1.0, 10.37, BOLD, COOL, now_s=1.0, last_change_s=0.0
    )
    assert (d.price, d.bound) == (10.2, "ceiling")


def test_category_guardrails_override_the_global_ones():
    config = PricingConfig(category_guardrails={"books": Guardrails(max_deviation=0.05)})
    assert config.guardrails_for("books").max_deviation == 0.05
    assert config.guardrails_for("games") == config.guardrails_for(None) == config.guardrails
    assert decide(PricedItem("i", 10.0, category="books"), 1.0, None, BOLD, config).price == 10.5
    assert decide(PricedItem("i", 10.0, category="games"), 1.0, None, BOLD, config).price == 12.0


def test_records_round_money_to_cents():
    d = decide(PricedItem("i", 8.31), 0.0, 7.0, BOLD, CONFIG)
    assert (d.floor, d.ceiling) == (8.31 * 0.8, 7.0 * 1.1)  # 6.648000000000001, 7.700000000000001
    record = d.to_record("u", 1).to_dict()
    assert [record[f] for f in MONEY] == [6.65, 8.31, 6.65, 7.7, 7.0]


def test_to_record_has_the_design_contract_fields():
    d = decide(PricedItem("i", 10.0), 1.0, 10.0, BOLD, CONFIG)
    record = d.to_record("u1", 1_700_000_000_000).to_dict()
    assert record == {
        "user_id": "u1",
        "item_id": "i",
        "price": 11.0,
        "base_price": 10.0,
        "floor": 9.0,
        "ceiling": 11.0,
        "previous_price": 10.0,
        "arm": "bold",
        "policy_version": "bounded-v1",
        "reason": d.reason,
        "personalized": True,
        "ts": 1_700_000_000_000,
        "interest": 1.0,
        "bound": "step",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"floor": 11.0}, "floor"),
        ({"ceiling": 9.0}, "ceiling"),
        ({"floor": -1.0}, "floor"),
        ({"ceiling": math.inf}, "ceiling"),
    ],
)
def test_item_bounds_must_contain_the_base_price(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PricedItem("i", 10.0, **kwargs)


@pytest.mark.parametrize("base", [0.0, -1.0, math.nan, math.inf])
def test_base_price_must_be_finite_and_positive(base):
    with pytest.raises(ValueError, match="base_price"):
        PricedItem("i", base)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_deviation": 1.0},
        {"max_deviation": -0.1},
        {"max_step": -0.1},
        {"cooldown_s": -1.0},
        {"minor_unit": 0.0},
        {"max_step": math.nan},
        {"surprise": 1},
    ],
)
def test_guardrails_are_checked_at_load_time(kwargs):
    with pytest.raises(ValidationError):
        Guardrails(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": (GENTLE, GENTLE)}, "unique"),
        ({"arms": (ArmConfig(name="control", strength=1, share=0.8),)}, "control"),
        ({"arms": (ArmConfig(name="a", strength=1, share=0.5),)}, "sum"),
        ({"min_arm_share": 0.5}, "min_arm_share"),
        ({"control_share": 1.0}, "control_share"),
        ({"arms": ()}, "arms"),
        (
            {
                "arms": (
                    ArmConfig(name="a", strength=1, share=0.78),
                    ArmConfig(name="b", strength=1, share=0.02),
                )
            },
            "below",
        ),
    ],
)
def test_experiment_layout_is_checked_at_load_time(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        PricingConfig(**kwargs)


def test_arm_lookup_and_initial_shares():
    assert CONFIG.arm_by_name("control") is None
    assert CONFIG.arm_by_name("bold") == BOLD
    with pytest.raises(KeyError):
        CONFIG.arm_by_name("nope")
    assert CONFIG.initial_shares() == {"control": 0.2, "gentle": 0.4, "bold": 0.4}


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([], []),
        ([3.0], [0.5]),
        ([math.nan], [0.0]),
        ([1.0, 3.0, 2.0], [0.0, 1.0, 0.5]),
        ([1.0, 1.0, 2.0], [0.25, 0.25, 1.0]),
        ([7.0, 7.0, 7.0], [0.5, 0.5, 0.5]),
        ([math.inf, math.nan, 0.0, -math.inf], [1.0, 0.0, 2 / 3, 1 / 3]),
        ([math.nan, math.nan, 5.0], [0.0, 0.0, 1.0]),
    ],
)
def test_interest_from_scores_edges(scores, expected):
    assert interest_from_scores(scores) == pytest.approx(expected)


@PROPERTY
@given(st.lists(st.floats() | NASTY_FLOATS, max_size=30), st.randoms(use_true_random=False))
def test_interest_is_an_order_preserving_rank_in_unit_interval(scores, rnd):
    interests = interest_from_scores(scores)
    assert len(interests) == len(scores)
    assert all(0.0 <= x <= 1.0 for x in interests)
    for s_i, x_i in zip(scores, interests, strict=True):
        if math.isnan(s_i):
            assert x_i == 0.0
        for s_j, x_j in zip(scores, interests, strict=True):
            if s_i < s_j:
                assert x_i < x_j
            if s_i == s_j:
                assert x_i == x_j
    shuffled = list(zip(scores, interests, strict=True))
    rnd.shuffle(shuffled)
    assert interest_from_scores([s for s, _ in shuffled]) == [x for _, x in shuffled]


@PROPERTY
@given(
    st.floats(0.0, 1.0),
    st.floats(0.0, 1e6),
    st.floats(0.0, 1e6),
    st.sampled_from([0.01, 0.05, 1.0, 0.003]),
)
def test_rounding_never_leaves_the_interval(where, a, b, unit):
    low, high = sorted((a, b))
    price = low + (high - low) * where
    rounded = round_within(price, low, high, unit)
    assert low <= rounded <= high
    if rounded != price:
        assert abs(rounded - price) <= unit


def test_rounding_goes_inward_or_gives_up():
    assert round_within(10.004, 10.001, 10.02, 0.01) == 10.01  # nearest (10.00) is outside
    assert round_within(5.005, 5.001, 5.009, 0.01) == 5.005  # no cent inside
    assert round_within(19.994, 0.0, 100.0, 0.01) == 19.99


def test_rounding_keeps_an_edge_that_is_itself_a_multiple():
    # 10.2 / 0.01 == 1019.999... in floats; the ceiling must not be pushed down to 10.19.
    assert round_within(10.2, 9.0, 10.2, 0.01) == 10.2
    assert round_within(0.3, 0.3, 1.0, 0.1) == 0.3


def test_price_stays_positive_for_the_smallest_base_price():
    # 5e-324 * (1 - 0.5) underflows to 0.0; a zero price must never come out.
    config = PricingConfig(guardrails=Guardrails(max_deviation=0.5))
    d = decide(PricedItem("i", 5e-324), 0.0, None, BOLD, config)
    assert d.price > 0 and d.floor > 0
