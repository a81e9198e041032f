"""A small synthetic catalogue and event log, with every class of bad input."""

from __future__ import annotations

import random

from encoders.behaviour import StateConfig, apply_with_catalog, scoring_inputs
from encoders.config import EncoderConfig
from encoders.model import Recommender
from encoders.ranker import Ranker
from streams.records.inputs import Event, Item, item_titles
from streams.records.user_state import UserState

GENRES = ["drama", "comedy", "action", "horror", "sci-fi"]


def catalog(n: int = 30) -> list[dict[str, object]]:
    return [
        {
            "item_id": f"it{i}",
            "title": f"Film {i} of {GENRES[i % 5]}",
            "category": GENRES[i % 5],
            "base_price": 5.0 + i,
            "floor": 4.0 + i,
            "ceiling": 7.0 + i,
        }
        for i in range(n)
    ]


def events(users: int = 12, per_user: int = 8, seed: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for n in range(users * per_user):
        user = f"user{n % users}"
        kind = rng.choice(["view", "click", "add_to_cart", "purchase"])
        event: dict[str, object] = {
            "event_id": f"ev{n}",
            "type": kind,
            "user_id": user,
            "item_id": f"it{rng.randrange(30)}",
            "ts": 1_700_000_000_000 + n * 1000,
        }
        if kind == "purchase":
            event["price"] = round(rng.uniform(5, 30), 2)
        out.append(event)
    return out


BAD: list[tuple[bytes | None, bytes, str]] = [
    (b"userX", b'{"event_id": "b1", "type": ', "invalid JSON"),
    (
        b"userX",
        b'{"event_id":"b2","type":"view","item_id":"it1","ts":5}',
        "missing field 'user_id'",
    ),
    (
        b"userX",
        b'{"event_id":"b3","type":"view","user_id":"userX","item_id":"it1","ts":"noon"}',
        "'ts' must be an integer",
    ),
    (
        b"userX",
        b'{"event_id":"b4","type":"teleport","user_id":"userX","item_id":"it1","ts":5}',
        "unknown event type",
    ),
    (
        b"userX",
        b'{"event_id":"b5","type":"purchase","user_id":"userX","item_id":"it1","ts":5,"price":-2}',
        "negative price",
    ),
    (
        b"userX",
        b'{"event_id":"b6","type":"view","user_id":"userX","item_id":"'
        + b"x" * 70_000
        + b'","ts":5}',
        "exceeds",
    ),
    (
        b"userX",
        b'{"event_id":"b7","type":"view","user_id":"\xc3\x28","item_id":"it1","ts":5}',
        "not UTF-8",
    ),
    (
        b"someone-else",
        b'{"event_id":"b8","type":"view","user_id":"userX","item_id":"it1","ts":5}',
        "does not match user_id",
    ),
]

# The worker's rejection reason label of each record of BAD, in order (streams.worker.metrics).
BAD_REASONS = [
    "invalid_json",
    "missing_field",
    "invalid_value",
    "unknown_type",
    "invalid_value",
    "too_large",
    "not_utf8",
    "key_mismatch",
]


def expected_states(
    evs: list[dict[str, object]], items: list[dict[str, object]]
) -> dict[str, UserState]:
    catalog: dict[str, Item] = {str(i["item_id"]): Item.from_dict(i) for i in items}
    states: dict[str, UserState] = {}
    for raw in evs:
        event = Event.from_dict(raw)
        states[event.user_id] = apply_with_catalog(
            states.get(event.user_id, UserState()), event, catalog, StateConfig()
        )
    return states


def offline_top10(
    model: Recommender, items: list[dict[str, object]], states: dict[str, UserState]
) -> dict[str, list[str]]:
    """Each user's top-10 from the stream's scorer code run offline on the expected states."""
    ranker = Ranker(model, EncoderConfig(device="cpu"))
    catalog = {str(i["item_id"]): Item.from_dict(i) for i in items}
    index = ranker.build_index([(k, v.text()) for k, v in catalog.items()])
    users = sorted(states)
    inputs = scoring_inputs([states[u] for u in users], item_titles(catalog), StateConfig())
    ranked = ranker.recommend(*inputs, index)
    return {u: [i for i, _ in r] for u, r in zip(users, ranked, strict=True)}
