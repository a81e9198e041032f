"""The outcome agent's per-user step: offers remembered, purchases attributed, in order."""

from pricing.experiments import MAX_OFFERS_PER_USER, settle_user
from streams.records.inputs import Event
from streams.records.outputs import PriceUpdate


def offer(item: str, ts: int, price: float = 9.0, arm: str = "bold") -> PriceUpdate:
    return PriceUpdate(
        user_id="u",
        item_id=item,
        price=price,
        base_price=10.0,
        floor=8.0,
        ceiling=12.0,
        previous_price=None,
        arm=arm,
        policy_version="p1",
        reason="test",
        personalized=arm != "control",
        ts=ts,
        interest=0.5,
        bound="none",
    )


def purchase(item: str, ts: int) -> Event:
    return Event(f"buy-{item}-{ts}", "purchase", "u", item, ts)


def test_purchase_is_credited_to_the_latest_offer_made_before_it():
    inputs = [offer("a", 1_000, 9.0), offer("a", 2_000, 8.5, "gentle"), purchase("a", 3_000)]
    offers, credited = settle_user({}, inputs, window_s=60)
    assert [(r.arm, r.price, r.offer_ts) for r in credited] == [("gentle", 8.5, 2_000)]
    assert credited[0].revenue == 8.5 and credited[0].base_price == 10.0
    assert offers["a"][:3] == (8.5, 2_000, "gentle")


def test_order_inside_a_batch_matters():
    # The purchase came before the item was ever offered: no credit, though the
    # offer arrives later in the same batch.
    _, credited = settle_user({}, [purchase("a", 1_000), offer("a", 2_000)], window_s=60)
    assert credited == []


def test_purchases_outside_the_window_or_of_other_items_earn_nothing():
    inputs = [offer("a", 1_000), purchase("a", 1_000 + 61_000), purchase("b", 2_000)]
    _, credited = settle_user({}, inputs, window_s=60)
    assert credited == []


def test_offers_kept_per_user_are_bounded():
    inputs = [offer(f"i{k}", k) for k in range(MAX_OFFERS_PER_USER + 10)]
    offers, _ = settle_user({}, inputs, window_s=60)
    assert len(offers) == MAX_OFFERS_PER_USER
    assert "i0" not in offers and f"i{MAX_OFFERS_PER_USER + 9}" in offers
