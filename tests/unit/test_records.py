import orjson
import pytest

from streams.records.inputs import MAX_RECORD_BYTES, Event, InvalidRecord, Item

VALID = {
    "event_id": "e1",
    "type": "purchase",
    "user_id": "u1",
    "item_id": "i1",
    "ts": 1_700_000_000_000,
    "price": 9.5,
    "quantity": 2,
}


def raw(**changes: object) -> bytes:
    obj = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return orjson.dumps(obj)


def test_valid_event_round_trips():
    event = Event.from_json(raw())
    assert event.to_dict() == VALID


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"event_id": "e1", ', "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (raw(user_id=...), "missing field 'user_id'"),
        (raw(event_id=""), "field 'event_id' is empty"),
        (raw(ts="yesterday"), "field 'ts' must be an integer"),
        (raw(ts=True), "field 'ts' must be an integer"),
        (raw(ts=-5), "'ts' is negative"),
        (raw(user_id=7), "field 'user_id' must be a string"),
        (raw(type="teleport"), "unknown event type 'teleport'"),
        (raw(price=-1.0), "negative price"),
        (raw(price="cheap"), "field 'price' must be a number"),
        (raw(price=True), "field 'price' must be a number"),
        (raw(quantity=0), "'quantity' must be a positive integer"),
        (raw(type="rating"), "missing field 'rating'"),
        (raw(type="rating", rating=11), "outside [0, 10]"),
        (b'{"event_id":"e","type":"view","user_id":"\xff\xfe","item_id":"i","ts":1}', "not UTF-8"),
        (raw(item_id="x" * (MAX_RECORD_BYTES + 1)), "exceeds"),
    ],
)
def test_every_bad_input_class_has_a_clear_reason(payload: bytes, reason: str):
    with pytest.raises(InvalidRecord, match=None) as info:
        Event.from_json(payload)
    assert reason in str(info.value)


def test_non_finite_numbers_are_rejected():
    with pytest.raises(InvalidRecord, match="infinity"):
        Event.from_json(
            b'{"event_id":"e","type":"view","user_id":"u","item_id":"i","ts":1,"price":1e999}'
        )


def test_item_validation_and_text():
    item = Item.from_json(
        orjson.dumps(
            {
                "item_id": "1",
                "title": "Toy Story (1995)",
                "category": "Animation",
                "base_price": 8.0,
                "attributes": {"year": 1995},
                "floor": 6.0,
                "ceiling": 10.0,
            }
        )
    )
    assert item.text() == "Toy Story (1995). category: Animation. year: 1995"
    with pytest.raises(InvalidRecord, match="floor 9.0 above base_price 8.0"):
        Item.from_json(b'{"item_id":"1","title":"t","category":"c","base_price":8,"floor":9}')
    with pytest.raises(InvalidRecord, match="base_price must be positive"):
        Item.from_json(b'{"item_id":"1","title":"t","category":"c","base_price":0}')
