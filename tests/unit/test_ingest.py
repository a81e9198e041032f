"""The ingest agent's per-user batch step: the same state as event by event, and what it reports."""

from encoders.behaviour import StateConfig, apply_with_catalog
from streams.records.inputs import Event, Item
from streams.records.user_state import UserState
from streams.worker.flows.ingest import apply_group

CONFIG = StateConfig()
ITEMS = {
    "a": Item("a", "Heat (1995)", "Action", 10.0),
    "b": Item("b", "Fargo (1996)", "Crime", 12.0),
}


def ev(n: int, kind: str = "click", item: str = "a") -> Event:
    return Event(f"e{n}", kind, "u", item, 1_000 + n)


def one_by_one(state: UserState, events: list[Event]) -> UserState:
    for event in events:
        state = apply_with_catalog(state, event, ITEMS, CONFIG)
    return state


def test_group_gives_the_state_of_applying_each_event_in_order():
    events = [ev(1), ev(2, "purchase", "b"), ev(3, "view", "b"), ev(4, "purchase", "a")]
    result = apply_group(UserState(), events, ITEMS, CONFIG)
    assert result.state == one_by_one(UserState(), events)
    assert result.changed
    assert result.trigger == events[-1]
    assert result.purchases == (1, 3)
    assert result.failures == ()


def test_old_duplicates_change_nothing_and_trigger_no_request():
    before = one_by_one(UserState(), [ev(1), ev(2)])
    result = apply_group(before, [ev(1)], ITEMS, CONFIG)
    assert result.state is before
    assert not result.changed
    assert result.trigger is None


def test_redelivered_latest_event_is_sent_again_without_a_state_change():
    before = one_by_one(UserState(), [ev(1), ev(2, "purchase")])
    result = apply_group(before, [ev(1), ev(2, "purchase")], ITEMS, CONFIG)
    assert not result.changed
    assert result.trigger == ev(2, "purchase")
    assert result.purchases == ()  # already forwarded when it was first applied


def test_duplicates_inside_one_batch_count_once():
    events = [ev(1), ev(2, "purchase"), ev(2, "purchase"), ev(3)]
    result = apply_group(UserState(), events, ITEMS, CONFIG)
    assert result.state == one_by_one(UserState(), [ev(1), ev(2, "purchase"), ev(3)])
    assert result.purchases == (1,)
    assert result.state.version == 3


def test_a_failing_event_is_reported_and_the_others_still_apply():
    class Exploding(dict[str, Item]):
        def get(self, key: str, default: object = None) -> Item | None:  # type: ignore[override]
            if key == "boom":
                raise RuntimeError("catalogue broke")
            return super().get(key)

    items = Exploding(ITEMS)
    events = [ev(1), ev(2, "click", "boom"), ev(3, "purchase", "b")]
    result = apply_group(UserState(), events, items, CONFIG)
    assert [position for position, _ in result.failures] == [1]
    assert "catalogue broke" in result.failures[0][1]
    assert result.state == one_by_one(UserState(), [ev(1), ev(3, "purchase", "b")])
    assert result.trigger == events[2]
