from encoders.behaviour import StateConfig, apply_event, render_summary
from streams.records.inputs import Event
from streams.records.user_state import UserState

CONFIG = StateConfig(window=5)
TITLES = {"i1": "Toy Story (1995)", "i2": "Heat (1995)", "i3": "Fargo (1996)"}
CATEGORIES = {"i1": "Animation", "i2": "Action", "i3": "Crime"}
PRICES = {"i1": 8.0, "i2": 12.0, "i3": 10.0}


def ev(n: int, kind: str, item: str, **extra: object) -> Event:
    return Event(f"e{n}", kind, "u1", item, 1_000_000 + n * 1000, **extra)  # type: ignore[arg-type]


def run(events: list[Event], config: StateConfig = CONFIG) -> UserState:
    state = UserState()
    for event in events:
        state = apply_event(
            state, event, CATEGORIES.get(event.item_id), PRICES.get(event.item_id), config
        )
    return state


def test_summary_names_what_the_user_did_most_recent_first():
    state = run([ev(1, "view", "i1"), ev(2, "purchase", "i2"), ev(3, "click", "i3")])
    text = render_summary(state, TITLES.get, CONFIG)
    assert text.startswith(
        "Recently purchased: Heat (1995); clicked: Fargo (1996); viewed: Toy Story"
    )
    assert "favourite categories: Action, Crime, Animation" in text
    assert "usual price range" in text


def test_new_user_and_unknown_items_are_described():
    assert render_summary(UserState(), TITLES.get, CONFIG) == "New user with no recent activity."
    state = run([ev(1, "click", "zz")])
    assert "clicked: item zz" in render_summary(state, TITLES.get, CONFIG)


def test_duplicate_event_ids_do_not_change_state():
    once = run([ev(1, "purchase", "i1"), ev(2, "click", "i2")])
    twice = run(
        [
            ev(1, "purchase", "i1"),
            ev(1, "purchase", "i1"),
            ev(2, "click", "i2"),
            ev(1, "purchase", "i1"),
        ]
    )
    assert once.to_json() == twice.to_json()
    assert twice.version == 2


def test_window_keeps_last_n_and_purchases_are_remembered():
    events = [ev(i, "purchase" if i == 0 else "view", f"i{i % 3 + 1}") for i in range(12)]
    state = run(events)
    assert len(state.recent) == CONFIG.window
    assert [e.ts for e in state.recent] == [e.ts for e in events[-5:]]
    assert "i1" in state.purchased
    assert "i1" in state.interacted()


def test_bad_rating_counts_against_the_category():
    state = run([ev(1, "rating", "i1", rating=1.0)])
    assert state.categories["Animation"] < 0
    assert "favourite categories" not in render_summary(state, TITLES.get, CONFIG)


def test_state_bytes_round_trip_exactly():
    state = run([ev(i, "purchase", f"i{i % 3 + 1}", price=3.3 * i) for i in range(1, 9)])
    assert UserState.from_json(state.to_json()) == state
    assert UserState.from_stored(None) == UserState()


def test_state_stays_small_for_a_heavy_user():
    events = [ev(i, "purchase", f"item-{i:06d}") for i in range(5000)]
    state = run(events, StateConfig())
    assert len(state.to_json()) < 16 * 1024  # bounded by max_purchased, not history
    light = run([ev(i, "click", f"item-{i:06d}") for i in range(20)], StateConfig())
    assert len(light.to_json()) <= 2048
