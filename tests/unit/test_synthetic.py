"""The synthetic log generator: deterministic, in contract, in time order, skewed, in sessions."""

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from encoders.dataset import load_dataset
from streams.cli.main import app
from streams.offline.synthetic import SyntheticConfig, generate
from streams.records.inputs import EVENT_TYPES, Event, Item

SMALL = {"events": 6000, "items": 600, "users": 200}
SESSION_GAP_MS = 30 * 60_000  # a gap this long or longer ends a session


def _write(tmp_path: Path, name: str, **overrides: object) -> tuple[list[Event], list[Item]]:
    config = SyntheticConfig.model_validate({**SMALL, **overrides})
    out = tmp_path / name
    generate(out, config)
    events = [Event.from_json(line) for line in (out / "events.jsonl").read_bytes().splitlines()]
    items = [Item.from_json(line) for line in (out / "items.jsonl").read_bytes().splitlines()]
    return events, items


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Event], list[Item]]:
    return _write(tmp_path_factory.mktemp("synth"), "s0")


def _top_share(events: list[Event], n_items: int) -> float:
    counts = sorted(Counter(e.item_id for e in events).values(), reverse=True)
    return sum(counts[: max(1, n_items // 100)]) / len(events)


def _gaps(events: list[Event]) -> list[int]:
    last: dict[str, int] = {}
    gaps = []
    for event in events:
        if event.user_id in last:
            gaps.append(event.ts - last[event.user_id])
        last[event.user_id] = event.ts
    return gaps


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, SyntheticConfig(events=800, items=100, users=40, seed=seed))
    for file in ("events.jsonl", "items.jsonl"):
        a, b, c = ((tmp_path / n / file).read_bytes() for n in "abc")
        assert a == b
        assert a != c


def test_counts_as_asked_and_every_record_in_contract(small):
    events, items = small
    assert len(events) == SMALL["events"] and len(items) == SMALL["items"]
    assert len({e.user_id for e in events}) == SMALL["users"]
    assert len({e.event_id for e in events}) == len(events)
    assert {e.type for e in events} == EVENT_TYPES
    catalog = {item.item_id: item for item in items}
    assert set(catalog) >= {e.item_id for e in events}
    for event in events:
        item = catalog[event.item_id]
        if event.type in ("add_to_cart", "purchase"):
            assert event.price is not None
            assert item.floor is not None and item.ceiling is not None
            assert item.floor <= event.price <= item.ceiling
        assert (event.rating is not None) == (event.type == "rating")
        if event.rating is not None:
            assert 1 <= event.rating <= 5


def test_items_read_like_movielens(small):
    _, items = small
    for item in items:
        assert item.title.endswith(")") and item.title[-6] == "(" and item.title[-5:-1].isdigit()
        assert dict(item.attributes)["genres"].split(", ")[0] == item.category
        # The description names the item's topic and words of it.
        assert item.category.lower() in item.description.lower()


def test_events_in_time_order_and_each_item_once_per_user(small):
    events, _ = small
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False))
    pairs = [(e.user_id, e.item_id) for e in events]
    assert len(set(pairs)) == len(pairs)


def test_users_have_a_long_tail_and_enough_events_to_split(small):
    events, _ = small
    counts = sorted(Counter(e.user_id for e in events).values())
    assert counts[0] >= 3
    median = counts[len(counts) // 2]
    assert counts[-1] > 4 * median


def test_popularity_is_skewed_by_the_zipf_exponent(tmp_path: Path, small):
    events, items = small
    flat_events, _ = _write(tmp_path, "flat", zipf=0.0)
    skewed, flat = _top_share(events, len(items)), _top_share(flat_events, len(items))
    # Uniform popularity gives the top 1% of items little more than 1% of the events.
    assert skewed > 3 * flat
    assert skewed > 0.05


def test_events_come_in_sessions(small):
    events, _ = small
    gaps = _gaps(events)
    short = [g for g in gaps if g < SESSION_GAP_MS]
    long = [g for g in gaps if g >= SESSION_GAP_MS]
    # Bimodal: most gaps are within a session, a clear minority separate sessions,
    # and the two groups lie far apart.
    assert 0.5 < len(short) / len(gaps) < 0.95
    assert sorted(short)[len(short) // 2] * 100 < sorted(long)[len(long) // 2]


def test_sessions_stay_on_topic(small):
    events, items = small
    category = {item.item_id: item.category for item in items}
    shares = Counter(category[e.item_id] for e in events)
    by_chance = sum((n / len(events)) ** 2 for n in shares.values())
    last: dict[str, Event] = {}
    same = pairs = 0
    for event in events:
        before = last.get(event.user_id)
        if before is not None and event.ts - before.ts < SESSION_GAP_MS:
            pairs += 1
            same += category[before.item_id] == category[event.item_id]
        last[event.user_id] = event
    assert same / pairs > 3 * by_chance


def test_load_dataset_splits_every_user(tmp_path: Path):
    out = tmp_path / "ds"
    generate(out, SyntheticConfig(events=900, items=150, users=60))
    dataset = load_dataset(out / "events.jsonl", out / "items.jsonl")
    assert dataset.skipped_events == 0 and dataset.skipped_items == 0
    assert len(dataset.items) == 150
    assert len(dataset.valid) == len(dataset.test) == 60
    assert len(dataset.train) == 900 - 2 * 60
    # Each held-out target is new to its user, so the evaluation can rank it.
    assert all(e.target not in e.history for e in dataset.test)


@pytest.mark.parametrize(
    "flags",
    [
        {"events": 10, "users": 5},  # fewer events than users x min_user_events
        {"events": 100, "items": 10, "users": 2},  # more than half the catalogue each
        {"related": 0.6, "same_topic": 0.6},
        {"zipf": -1.0},
    ],
)
def test_config_refuses_what_cannot_be_generated(flags):
    with pytest.raises(ValidationError):
        SyntheticConfig.model_validate(flags)


def test_default_users_give_thirty_events_each():
    assert SyntheticConfig().user_count() == 1_000_000 // 30


def test_cli_writes_and_reports(tmp_path: Path):
    runner = CliRunner()
    args = ["data", "synthetic", "--out", str(tmp_path), "--events", "500", "--items", "80"]
    result = runner.invoke(app, [*args, "--users", "20", "--zipf", "1.2", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "wrote 500 events of 20 users" in result.output
    assert "wrote 80 items" in result.output
    assert len((tmp_path / "events.jsonl").read_bytes().splitlines()) == 500
    expected = tmp_path / "api"
    generate(expected, SyntheticConfig(events=500, items=80, users=20, zipf=1.2, seed=7))
    assert (tmp_path / "events.jsonl").read_bytes() == (expected / "events.jsonl").read_bytes()
    bad = runner.invoke(app, [*args, "--users", "400"])
    assert bad.exit_code == 2
    assert "need 1200 events" in " ".join(bad.output.replace("│", " ").split())
