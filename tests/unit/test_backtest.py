"""Back-test engine on a tiny random model and a synthetic catalogue (no broker)."""

from __future__ import annotations

import math

import orjson
import pytest
import torch

from encoders.behaviour import StateConfig
from encoders.config import EncoderConfig
from encoders.model import tiny_random_model
from encoders.ranker import Ranker
from pricing.ab_report import write_ab_report
from pricing.config import ArmConfig, Guardrails, PricingConfig
from pricing.policy import Decision
from pricing.simulator import DemandConfig
from streams.offline.backtest import BacktestConfig, bound_violations, run_backtest
from streams.records.inputs import Event, Item

CATEGORIES = ("Action", "Comedy", "Drama", "Horror")
# Every buyer pays at most 90% of the base price, whatever their interest: only deep
# discounts sell.
DISCOUNT_ONLY = DemandConfig(
    seed=1,
    wtp_log_mean=math.log(0.9),
    wtp_interest_slope=0.0,
    wtp_sigma=0.0,
    attention_base=1.0,
    attention_slope=0.0,
)


@pytest.fixture(scope="module")
def ranker() -> Ranker:
    torch.set_num_threads(1)
    return Ranker(tiny_random_model(), EncoderConfig(device="cpu", top_k=5))


def _items() -> list[Item]:
    items = []
    for i in range(40):
        base = 5.0 + (i * 37 % 100) / 10
        items.append(
            Item(
                item_id=f"i{i}",
                title=f"Film number {i}",
                category=CATEGORIES[i % 4],
                base_price=base,
                # Some items have a floor/ceiling tighter than the deviation band.
                floor=round(base * 0.9, 2) if i % 3 == 0 else None,
                ceiling=round(base * 1.05, 2) if i % 5 == 0 else None,
            )
        )
    return items


def _events(users: int = 60, per_user: int = 12) -> list[Event]:
    events = []
    for u in range(users):
        for k in range(per_user):
            item = (u * 7 + k * 3) % 40
            kind = "purchase" if k % 4 == 0 else "click"
            ts = 1_000_000 + (k * users + u) * 1000
            events.append(Event(f"e{u}-{k}", kind, f"u{u}", f"i{item}", ts))
    events.sort(key=lambda e: e.ts)
    return events


def _pricing(**arms: float) -> PricingConfig:
    layout = tuple(ArmConfig(name=n, strength=s, share=0.4) for n, s in arms.items())
    return PricingConfig(guardrails=Guardrails(max_step=0.1), arms=layout)


def _run(ranker, tmp_path, pricing=None, demand=DISCOUNT_ONLY, **config):
    pricing = pricing or _pricing(flat=0.0, deep=1.0)
    settings = {"max_batch": 8, "share_update_every": 60} | config
    return run_backtest(
        _events(),
        _items(),
        ranker,
        tmp_path,
        state_config=StateConfig(),
        pricing=pricing,
        demand=demand,
        config=BacktestConfig(**settings),
    )


def _lines(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_every_offer_is_in_bounds_and_written(ranker, tmp_path):
    result = _run(ranker, tmp_path)
    assert result.offers > 500
    assert result.out_of_bounds == 0 and result.violations == {}
    updates = _lines(tmp_path / "price_updates.jsonl")
    assert len(updates) == result.offers
    items = {i.item_id: i for i in _items()}
    for u in updates:
        item = items[u["item_id"]]
        assert u["floor"] <= u["price"] <= u["ceiling"]
        assert item.floor is None or u["price"] >= item.floor
        assert item.ceiling is None or u["price"] <= item.ceiling
        assert u["personalized"] is (u["arm"] != "control")
        if "previous_price" in u:
            assert abs(u["price"] / u["previous_price"] - 1) <= 0.1 + 1e-9
    outcomes = _lines(tmp_path / "outcomes.jsonl")
    assert len(outcomes) == result.purchases > 0
    assert sum(o["revenue"] for o in outcomes) == pytest.approx(result.revenue)
    assert {"control", "flat", "deep"} >= {o["arm"] for o in outcomes}
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["result"]["offers"] == result.offers


def test_bandit_moves_traffic_toward_the_better_arm(ranker, tmp_path):
    result = _run(ranker, tmp_path)
    # Only "deep" aims below 90% of base. Control never sells; "flat" sells only when a
    # user who moved over from "deep" is held near their old price by the step bound.
    deep, flat = result.arms["deep"], result.arms["flat"]
    assert result.arms["control"]["conversions"] == 0
    assert deep["conversions"] / deep["offers"] > 5 * flat["conversions"] / flat["offers"]
    shares = _lines(tmp_path / "shares.jsonl")
    assert shares[0]["shares"] == {"control": 0.2, "flat": 0.4, "deep": 0.4}
    assert len(shares) == result.share_updates + 1 >= 5
    last = shares[-1]["shares"]
    assert last["deep"] > 0.7 and last["flat"] == pytest.approx(0.05, abs=0.02)
    assert last["control"] == 0.2
    assert all(s["shares"]["flat"] >= 0.05 - 1e-12 for s in shares)


def test_same_seed_same_outputs(ranker, tmp_path):
    _run(ranker, tmp_path / "a", demand=DemandConfig(seed=4))
    _run(ranker, tmp_path / "b", demand=DemandConfig(seed=4))
    _run(ranker, tmp_path / "c", demand=DemandConfig(seed=5))
    for name in ("price_updates.jsonl", "outcomes.jsonl", "shares.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "outcomes.jsonl").read_bytes() != (
        tmp_path / "c" / "outcomes.jsonl"
    ).read_bytes()


def test_offer_cap_stops_at_a_batch_boundary(ranker, tmp_path):
    result = _run(ranker, tmp_path, max_offers=100)
    assert 100 <= result.offers < 100 + 8 * 5
    assert result.events < len(_events())


def test_report_on_backtest_output_has_the_per_arm_table(ranker, tmp_path):
    _run(ranker, tmp_path / "run")
    report = write_ab_report(tmp_path / "run", tmp_path / "report", n_boot=200)
    text = report.report_path.read_text()
    assert report.out_of_bounds == 0 and report.has_outcomes
    for arm in ("control", "flat", "deep"):
        assert f"| {arm} |" in text
    assert "## Uplift vs control" in text and "**0** (OK)" in text
    assert all(p.is_file() and p.stat().st_size > 1000 for p in report.plots)
    assert {p.name for p in report.plots} == {"arms.png", "over_time.png", "shares.png"}


def _decision(price, floor=9.0, ceiling=11.0, base=10.0):
    return Decision("x", price, base, floor, ceiling, None, "a", "v", 0.5, "none", "", 0.01)


@pytest.mark.parametrize(
    ("price", "item", "previous", "broken"),
    [
        (10.0, Item("x", "t", "c", 10.0), 9.5, []),
        (10.95, Item("x", "t", "c", 10.0), None, ["decision_band"]),
        (10.9, Item("x", "t", "c", 10.0, ceiling=10.5), None, ["item_ceiling"]),
        (9.1, Item("x", "t", "c", 10.0, floor=9.5), None, ["item_floor"]),
        (10.9, Item("x", "t", "c", 10.0), 9.5, ["step"]),
        # A previous price outside the hard band relaxes the step bound (documented).
        (10.9, Item("x", "t", "c", 10.0), 20.0, []),
        (math.nan, Item("x", "t", "c", 10.0), None, ["not_finite"]),
    ],
)
def test_bound_audit_catches_each_guardrail(price, item, previous, broken):
    guard = Guardrails(max_deviation=0.1, max_step=0.1)
    # Only the decision_band case gets a decision whose own band is narrower than the rules'.
    wide = broken != ["decision_band"]
    decision = _decision(price, floor=5.0, ceiling=20.0) if wide else _decision(price, 9, 10.9)
    assert bound_violations(decision, item, guard, previous) == broken


def test_deviation_band_is_audited():
    guard = Guardrails(max_deviation=0.1)
    decision = _decision(11.2, floor=5.0, ceiling=20.0)
    assert bound_violations(decision, Item("x", "t", "c", 10.0), guard, None) == ["deviation"]
