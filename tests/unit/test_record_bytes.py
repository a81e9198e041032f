"""Every record that crosses a boundary keeps its exact JSON bytes.

Consumers of the topics, tables and files parse these bytes; the literals
below were produced by the code that built each record as a dict, before the
records became classes, and must not change.
"""

from __future__ import annotations

import pytest

from encoders.behaviour import StateConfig, apply_with_catalog
from pricing.config import PricingConfig
from pricing.experiments import remember_offer, settle_purchase, settle_user
from pricing.policy import PricedItem, decide
from streams.records.dead_letter import DeadLetter
from streams.records.experiment import (
    ArmDelta,
    ArmStats,
    LastOffer,
    LastOffers,
    Outcome,
    SharesSnapshot,
)
from streams.records.inputs import Event, Item
from streams.records.json_record import JsonRecord, array_from_json, array_to_json
from streams.records.outputs import PriceUpdate, Recommendation
from streams.records.scoring import ScoringRequest
from streams.records.shown_prices import ShownPrice, ShownPrices
from streams.records.user_state import UserState
from streams.worker.flows.scoring import audit_record

EVENT_PURCHASE = (
    b'{"event_id":"e1","type":"purchase","user_id":"u1","item_id":"i1","ts":1700000000000,'
    b'"price":9.5,"quantity":2}'
)
EVENT_RATING = (
    b'{"event_id":"e2","type":"rating","user_id":"u1","item_id":"i2","ts":1700000001000,'
    b'"rating":4.0}'
)
EVENT_VIEW = b'{"event_id":"e3","type":"view","user_id":"u1","item_id":"i3","ts":1700000002000}'
ITEM_FULL = (
    b'{"item_id":"i1","title":"Toy Story (1995)","category":"Animation","base_price":8.49,'
    b'"description":"Toys.","attributes":{"genre":"kids","year":"1995"},"floor":6.0,"ceiling":10.0}'
)
ITEM_MIN = b'{"item_id":"i2","title":"Heat","category":"Action","base_price":5.0}'
STATE = (
    b'{"v":3,"r":[["purchase","i1",1700000000000,null],["rating","i2",1700000001000,4.0],'
    b'["view","i3",1700000002000,null]],"s":"/LMgnF0JZ5Q9BnIhUGRihoKy","p":["i1"],'
    b'"c":{"Animation":2.9999965617719075,"Action":0.8999994842656382},"pw":3.899996046037546,'
    b'"pm":8.461538003785869,"ps":75.1923010548951,"t":1700000002000,"e":"e3"}'
)
STATE_EMPTY = b'{"v":0,"r":[],"s":"","p":[],"c":{},"pw":0.0,"pm":0.0,"ps":0.0,"t":0,"e":""}'
SCORING_REQUEST = (
    b'{"user_id":"u1","trigger_event_id":"e3","event_ts":1700000002000,'
    b'"received_ms":1700000002500,"state":' + STATE + b"}"
)
RECOMMENDATION = (
    b'{"user_id":"u1","items":[{"item_id":"i1","score":0.123457,"rank":1},'
    b'{"item_id":"i2","score":-0.5,"rank":2}],"model_version":"model-v1","state_version":3,'
    b'"trigger_event_id":"e3","ts":1700000003000,"latency_ms":500}'
)
PRICE_UPDATE_STEP = (
    b'{"user_id":"u1","item_id":"i1","price":8.8,"base_price":8.49,"floor":7.2,"ceiling":8.8,'
    b'"previous_price":8.0,"arm":"gentle","policy_version":"bounded-v1",'
    b'"reason":"interest 0.73 in arm gentle raised price 3.7% vs base (capped by max step)",'
    b'"personalized":true,"ts":1700000003000,"interest":0.73,"bound":"step"}'
)
PRICE_UPDATE_FIRST = (
    b'{"user_id":"u1","item_id":"i2","price":5.0,"base_price":5.0,"floor":4.0,"ceiling":6.0,'
    b'"arm":"control","policy_version":"bounded-v1","reason":"control arm shows the base price",'
    b'"personalized":false,"ts":1700000003000,"interest":0.2,"bound":"control"}'
)
OFFERS = b"[" + PRICE_UPDATE_STEP + b"," + PRICE_UPDATE_FIRST + b"]"
AUDIT = (
    PRICE_UPDATE_STEP[:-1]
    + b',"score":0.123456789,"guardrails":{"max_deviation":0.2,"max_step":0.1,"cooldown_s":0.0,'
    b'"minor_unit":0.01},"experiment_id":"price-exp-1","model_version":"model-v1",'
    b'"state_version":3,"trigger_event_id":"e3"}'
)
OUTCOME = (
    b'{"user_id":"u1","item_id":"i1","arm":"gentle","price":8.8,"base_price":8.49,'
    b'"offer_ts":1700000003000,"ts":1700000004000,"revenue":8.8,"policy_version":"bounded-v1"}'
)
LAST_OFFERS = (
    b'{"i1":[8.8,1700000003000,"gentle","bounded-v1",8.49],'
    b'"i2":[5.0,1700000003000,"control","bounded-v1",5.0]}'
)
DEAD_LETTER_TEXT = (
    b'{"topic":"events","partition":2,"offset":17,"raw":"{\\"bad","raw_encoding":"utf-8",'
    b'"error":"invalid JSON","ts":5}'
)
DEAD_LETTER_BASE64 = (
    b'{"topic":"events","partition":0,"offset":3,"raw":"//4AYmluYXJ5","raw_encoding":"base64",'
    b'"error":"payload is not UTF-8","ts":6}'
)
DEAD_LETTER_EMPTY = (
    b'{"topic":"items","partition":1,"offset":4,"raw":"","raw_encoding":"utf-8","error":"empty",'
    b'"ts":7}'
)
SHARES = (
    b'{"update":3,"offers":22,"ts":1700000005000,"shares":{"control":0.2,"bold":0.5,"gentle":0.3},'
    b'"stats":{"control":{"offers":10,"conversions":1,"revenue":8.49},'
    b'"bold":{"offers":12,"conversions":2,"revenue":17.0}}}'
)
SHARES_INITIAL = (
    b'{"update":0,"offers":0,"ts":null,"shares":{"control":0.2,"bold":0.4,"gentle":0.4},'
    b'"stats":{"control":{"offers":0,"conversions":0,"revenue":0.0},'
    b'"bold":{"offers":0,"conversions":0,"revenue":0.0}}}'
)
EXPERIMENT_OFFERS = b'{"arm":"bold","offers":7}'
EXPERIMENT_CONVERSION = b'{"arm":"gentle","conversions":1,"revenue":8.8}'
ARM_STATS = b'{"offers":12,"conversions":2,"revenue":17.0}'
SHOWN_PRICES = b'{"i1":[8.49,1700000000.0],"i2":[5.0,1700000003.5]}'

PRICING = PricingConfig()


def _state() -> UserState:
    items = {item.item_id: item for item in (Item.from_json(ITEM_FULL), Item.from_json(ITEM_MIN))}
    state = UserState()
    for raw in (EVENT_PURCHASE, EVENT_RATING, EVENT_VIEW):
        state = apply_with_catalog(state, Event.from_json(raw), items, StateConfig())
    return state


def _request() -> ScoringRequest:
    return ScoringRequest("u1", _state(), "e3", 1_700_000_002_000, 1_700_000_002_500)


def _decisions():
    gentle = PRICING.arm_by_name("gentle")
    step = decide(
        PricedItem("i1", 8.49, 6.0, 10.0, "Animation"),
        0.73,
        8.0,
        gentle,
        PRICING,
        now_s=1.0e9,
        last_change_s=0.0,
    )
    first = decide(PricedItem("i2", 5.0, None, None, "Action"), 0.2, None, None, PRICING)
    return step, first


def _updates() -> tuple[PriceUpdate, PriceUpdate]:
    step, first = _decisions()
    return step.to_record("u1", 1_700_000_003_000), first.to_record("u1", 1_700_000_003_000)


def _pinned(record: JsonRecord, raw: bytes) -> None:
    """``record`` writes exactly ``raw`` and reads back from it as itself."""
    assert record.to_json() == raw
    assert type(record).from_json(raw) == record


@pytest.mark.parametrize("raw", [EVENT_PURCHASE, EVENT_RATING, EVENT_VIEW])
def test_event_bytes(raw: bytes):
    _pinned(Event.from_json(raw), raw)


@pytest.mark.parametrize("raw", [ITEM_FULL, ITEM_MIN])
def test_item_bytes(raw: bytes):
    _pinned(Item.from_json(raw), raw)


def test_item_attributes_are_written_sorted_as_text():
    raw = ITEM_FULL.replace(b'{"genre":"kids","year":"1995"}', b'{"year":1995,"genre":"kids"}')
    assert Item.from_json(raw).to_json() == ITEM_FULL


def test_user_state_bytes():
    _pinned(_state(), STATE)
    _pinned(UserState(), STATE_EMPTY)
    assert UserState.from_stored(None) == UserState()


def test_scoring_request_bytes():
    _pinned(_request(), SCORING_REQUEST)


def test_recommendation_bytes():
    ranked = [("i1", 0.123456789), ("i2", -0.5)]
    _pinned(Recommendation.of(_request(), ranked, "model-v1", 1_700_000_003_000), RECOMMENDATION)


def test_price_update_and_offers_bytes():
    step, first = _updates()
    _pinned(step, PRICE_UPDATE_STEP)
    _pinned(first, PRICE_UPDATE_FIRST)
    assert array_to_json([step, first]) == OFFERS
    assert array_from_json(PriceUpdate, OFFERS) == [step, first]


def test_audit_bytes():
    step, _ = _updates()
    audit = audit_record(step, 0.123456789, _request(), "model-v1", PRICING, "Animation")
    _pinned(audit, AUDIT)


def test_outcome_and_last_offers_bytes():
    step, first = _updates()
    offers = remember_offer(remember_offer({}, step), first)
    _pinned(LastOffers(offers), LAST_OFFERS)
    assert LastOffers.from_stored(None) == LastOffers()
    purchase = Event("p1", "purchase", "u1", "i1", 1_700_000_004_000)
    after, credited = settle_user({}, [step, first, purchase], 3600)
    assert LastOffers(after).to_json() == LAST_OFFERS
    assert [outcome.to_json() for outcome in credited] == [OUTCOME]
    _pinned(credited[0], OUTCOME)
    assert settle_purchase(after, "u1", "i1", 1_700_000_004_000, 3600) == credited[0]
    assert after["i1"] == LastOffer(8.8, 1_700_000_003_000, "gentle", "bounded-v1", 8.49)
    assert isinstance(credited[0], Outcome)


@pytest.mark.parametrize(
    ("args", "raw"),
    [
        (("events", 2, 17, b'{"bad', "invalid JSON", 5), DEAD_LETTER_TEXT),
        (("events", 0, 3, b"\xff\xfe\x00binary", "payload is not UTF-8", 6), DEAD_LETTER_BASE64),
        (("items", 1, 4, None, "empty", 7), DEAD_LETTER_EMPTY),
    ],
)
def test_dead_letter_bytes(args: tuple, raw: bytes):
    letter = DeadLetter.of(*args)
    _pinned(letter, raw)
    assert DeadLetter.from_json(raw).payload() == (args[3] or b"")


def test_shares_snapshot_bytes():
    stats = {"control": ArmStats(10, 1, 8.49), "bold": ArmStats(12, 2, 17.0)}
    shares = {"control": 0.2, "bold": 0.5, "gentle": 0.3}
    snapshot = SharesSnapshot.of(3, 1_700_000_005_000, shares, stats)
    _pinned(snapshot, SHARES)
    stats["bold"].offers += 1  # the snapshot keeps the counters it was taken with
    assert snapshot.to_json() == SHARES
    initial = {"control": 0.2, "bold": 0.4, "gentle": 0.4}
    empty = {"control": ArmStats(), "bold": ArmStats()}
    _pinned(SharesSnapshot.of(0, None, initial, empty), SHARES_INITIAL)


def test_experiment_event_and_arm_stats_bytes():
    _pinned(ArmDelta("bold", offers=7), EXPERIMENT_OFFERS)
    outcome = Outcome.from_json(OUTCOME)
    _pinned(ArmDelta.sale(outcome), EXPERIMENT_CONVERSION)
    _pinned(ArmStats(12, 2, 17.0), ARM_STATS)
    assert ArmStats.from_stored(None) == ArmStats()


def test_shown_prices_bytes():
    shown = {"i1": ShownPrice(8.49, 1.7e9), "i2": ShownPrice(5.0, 1_700_000_003.5)}
    _pinned(ShownPrices(shown), SHOWN_PRICES)
    assert ShownPrices.from_stored(None) == ShownPrices()
