import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders.config import EncoderConfig
from encoders.model import tiny_random_model
from encoders.ranker import Ranker
from pricing.config import PricingConfig
from pricing.offers import price_items
from pricing.policy import Decision
from pricing.shown_prices import PriceMemory
from streams.records.inputs import Item
from streams.records.shown_prices import ShownPrice

ITEMS = [
    (f"i{n}", f"movie number {n} about {w}")
    for n, w in enumerate(["cats", "dogs", "space", "war", "love"])
]


@pytest.fixture(scope="module")
def ranker() -> Ranker:
    torch.set_num_threads(1)
    return Ranker(tiny_random_model(), EncoderConfig(top_k=3, device="cpu"))


def test_index_build_and_top_k_excludes_interacted(ranker: Ranker):
    index = ranker.build_index(ITEMS)
    assert len(index) == 5 and index.embeddings.shape == (5, 32)
    summaries = ["Recently purchased: cats", "Recently viewed: war"]
    ranked = ranker.recommend(summaries, [(), ()], [frozenset({"i0", "i1"}), frozenset()], index)
    assert len(ranked[0]) == 3 and len(ranked[1]) == 3
    assert not {"i0", "i1"} & {item for item, _ in ranked[0]}
    scores = [s for _, s in ranked[1]]
    assert scores == sorted(scores, reverse=True)


def test_batched_scores_equal_single_user_scores(ranker: Ranker):
    index = ranker.build_index(ITEMS)
    summaries = ["short", "a much longer summary of what this user clicked recently"]
    batched = ranker.recommend(summaries, [()] * 2, [frozenset()] * 2, index)
    single = [ranker.recommend([s], [()], [frozenset()], index)[0] for s in summaries]
    for a, b in zip(batched, single, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert all(math.isclose(x, y, abs_tol=1e-4) for (_, x), (_, y) in zip(a, b, strict=True))


def test_update_index_reembeds_only_changed_items(ranker: Ranker):
    index = ranker.build_index(ITEMS)
    same = ranker.update_index(index, ITEMS[:2])
    assert same is index
    changed = ranker.update_index(index, [("i1", "a brand new text"), ("i9", "new item")])
    assert changed.item_ids == ("i0", "i1", "i2", "i3", "i4", "i9")
    assert torch.equal(changed.embeddings[0], index.embeddings[0])
    assert not torch.equal(changed.embeddings[1], index.embeddings[1])
    assert changed.version != index.version


def test_empty_index_and_everything_excluded(ranker: Ranker):
    empty = ranker.build_index([])
    assert ranker.recommend(["x"], [()], [frozenset()], empty) == [[]]
    index = ranker.build_index(ITEMS[:2])
    assert ranker.recommend(["x"], [()], [frozenset({"i0", "i1"})], index) == [[]]


CATALOG = {
    "a": Item("a", "A", "c1", 10.0, floor=9.0, ceiling=11.0),
    "b": Item("b", "B", "c2", 0.5),
    "c": Item("c", "C", "c1", 1000.0, ceiling=1001.0),
}


@settings(max_examples=300, deadline=None)
@given(
    scores=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    previous=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    user=st.text(min_size=1, max_size=8),
)
def test_prices_never_leave_their_bounds(scores: list[float], previous: float | None, user: str):
    config = PricingConfig()
    shown = {} if previous is None else {i: ShownPrice(previous, 0.0) for i in CATALOG}
    ranked = list(zip(["a", "b", "c"], scores, strict=True))
    arm, decisions = price_items(user, ranked, CATALOG, shown, config.initial_shares(), config)
    assert arm in {"control", "gentle", "bold"}
    assert len(decisions) == 3
    dev = config.guardrails.max_deviation
    for d in decisions:
        item = CATALOG[d.item_id]
        assert math.isfinite(d.price) and d.price > 0
        assert d.floor <= d.price <= d.ceiling
        assert item.base_price * (1 - dev) - 1e-9 <= d.price <= item.base_price * (1 + dev) + 1e-9
        if item.floor is not None:
            assert d.price >= item.floor
        if item.ceiling is not None:
            assert d.price <= item.ceiling


def test_cool_down_holds_a_users_price_between_scorings():
    from pricing.config import Guardrails

    config = PricingConfig(guardrails=Guardrails(cooldown_s=60.0))
    memory = PriceMemory(10)
    shares = config.initial_shares()
    user = next(
        f"u{n}"
        for n in range(1000)
        if price_items(f"u{n}", [("a", 1.0)], CATALOG, {}, shares, config)[0] == "bold"
    )
    low = [("a", 0.0), ("b", 1.0)]  # "a" ranked last: discounted
    high = [("a", 1.0), ("b", 0.0)]  # "a" ranked first: raised

    def show(ranked: list[tuple[str, float]], now_s: float) -> Decision:
        _, decisions = price_items(user, ranked, CATALOG, memory.of(user), shares, config, now_s)
        memory.remember(user, [(d.item_id, d.price) for d in decisions], now_s)
        return decisions[0]

    first = show(low, 1000.0).price
    held = show(high, 1030.0)
    assert held.price == first and held.bound == "cooldown"
    assert memory.of(user)["a"] == ShownPrice(first, 1000.0)
    assert show(high, 1061.0).price > first
    assert memory.of(user)["a"].changed_s == 1061.0
