"""pricing.shown_prices and the shown_prices table: bounded per user, kept per partition."""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from encoders.config import EncoderConfig
from pricing.shown_prices import PriceMemory, remember_shown
from streams.records.shown_prices import ShownPrice, ShownPrices
from streams.settings import Settings
from streams.topics import AppTables
from streams.worker.app import create_app
from streams.worker.faust_ext.gather import gather
from streams.worker.flows.scoring import read_shown, write_shown
from streams.worker.runtime import Runtime
from streams.worker.wiring import EventTable

_apps = itertools.count()


def test_an_item_changes_time_only_when_its_price_changes():
    shown = remember_shown({}, [("a", 10.0), ("b", 5.0)], 100.0, 10)
    assert shown == {"a": ShownPrice(10.0, 100.0), "b": ShownPrice(5.0, 100.0)}
    shown = remember_shown(shown, [("a", 10.0), ("b", 5.5)], 160.0, 10)
    assert shown == {"a": ShownPrice(10.0, 100.0), "b": ShownPrice(5.5, 160.0)}


def test_the_least_recently_shown_items_are_dropped_beyond_the_bound():
    shown = remember_shown({}, [("a", 1.0), ("b", 2.0), ("c", 3.0)], 0.0, 3)
    shown = remember_shown(shown, [("a", 1.0)], 1.0, 3)  # a is the most recent again
    shown = remember_shown(shown, [("d", 4.0)], 2.0, 3)
    assert list(shown) == ["c", "a", "d"]
    assert len(remember_shown({}, [(str(n), 1.0) for n in range(9)], 0.0, 4)) == 4


def test_remembering_returns_a_new_map():
    before = {"a": ShownPrice(1.0, 0.0)}
    remember_shown(before, [("a", 2.0), ("b", 1.0)], 5.0, 1)
    assert before == {"a": ShownPrice(1.0, 0.0)}


class LegacyMemory:
    """The worker-RAM LRU that the table replaced, for one user: the reference semantics."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.prices: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def put(self, item_id: str, price: float, now_s: float) -> None:
        entry = self.prices.get(item_id)
        changed = now_s if entry is None or entry[0] != price else entry[1]
        self.prices[item_id] = (price, changed)
        self.prices.move_to_end(item_id)
        while len(self.prices) > self.capacity:
            self.prices.popitem(last=False)


@given(
    capacity=st.integers(1, 4),
    scorings=st.lists(
        st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from([1.0, 1.5, 2.0]))),
        max_size=8,
    ),
)
def test_one_price_at_a_time_a_users_map_follows_the_memory_it_replaced(
    capacity: int, scorings: list[list[tuple[str, float]]]
):
    legacy = LegacyMemory(capacity)
    shown: dict[str, ShownPrice] = {}
    for now_s, prices in enumerate(scorings):
        for item_id, price in prices:
            legacy.put(item_id, price, float(now_s))
            shown = remember_shown(shown, [(item_id, price)], float(now_s), capacity)
        assert list(shown.items()) == [(k, ShownPrice(*v)) for k, v in legacy.prices.items()]


def test_the_items_of_one_scoring_never_push_each_other_out():
    shown = remember_shown({}, [("a", 1.0), ("c", 1.0)], 0.0, 2)
    # One price at a time, "b" would drop "a" and "a" would come back as new (changed at 1.0).
    assert remember_shown(shown, [("b", 1.0), ("a", 1.0)], 1.0, 2) == {
        "b": ShownPrice(1.0, 1.0),
        "a": ShownPrice(1.0, 0.0),
    }


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.builds(ShownPrice, st.floats(1e-6, 1e9), st.floats(0, 4e9)),
        max_size=8,
    )
)
def test_bytes_keep_prices_exactly_and_their_order(shown: dict[str, ShownPrice]):
    back = ShownPrices.from_json(ShownPrices(shown).to_json()).by_item
    assert list(back.items()) == list(shown.items())


def test_a_user_never_priced_has_an_empty_map():
    assert ShownPrices.from_stored(None).by_item == {}
    assert PriceMemory().of("nobody") == {}


def test_the_memory_in_ram_is_bounded_per_user():
    memory = PriceMemory(2)
    memory.remember("u", [("a", 1.0), ("b", 2.0), ("c", 3.0)], 0.0)
    memory.remember("v", [("a", 9.0)], 0.0)
    assert list(memory.of("u")) == ["b", "c"] and memory.of("v") == {"a": ShownPrice(9.0, 0.0)}
    with pytest.raises(ValueError, match="per_user"):
        PriceMemory(0)


def test_one_scoring_must_fit_in_a_users_map():
    assert Settings().scorer.shown_prices_per_user >= Settings().encoder.top_k
    with pytest.raises(ValidationError, match="below encoder.top_k"):
        Settings(scorer={"shown_prices_per_user": 5})
    Settings(scorer={"shown_prices_per_user": 5}, encoder={"top_k": 5})
    # The per-worker count it replaces fails loudly instead of being ignored.
    with pytest.raises(ValidationError, match="price_memory"):
        Settings(scorer={"price_memory": 1000})


async def test_each_users_map_is_kept_in_the_partition_of_that_users_event():
    app = faust.App(f"shown-{next(_apps)}", store="memory://", autodiscover=False)
    table = app.Table("shown_prices", default=None, partitions=4, value_type=bytes)
    changelog: list[tuple[int, str, bytes]] = []

    def send_changelog(partition: int, key: str, value: bytes, *_: object) -> SimpleNamespace:
        changelog.append((partition, key, value))
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    table.send_changelog = send_changelog  # type: ignore[method-assign]
    shown = EventTable(app, table)
    users = {"u0": 2, "u1": 0, "u2": 3}
    after = {user: {"it1": ShownPrice(float(n), 7.0)} for n, user in enumerate(users)}
    read: list[dict[str, bytes | None]] = []
    done = asyncio.Event()

    @app.agent(app.channel())
    async def agent(stream: faust.StreamT) -> None:
        async for pairs in gather(stream, len(users), 1.0):
            events = {value: event for value, event in pairs}
            try:
                stored = read_shown(shown, events)
                read.append(stored)
                write_shown(shown, events, stored, after)
                stored = read_shown(shown, events)
                read.append(stored)
                write_shown(shown, events, stored, after)  # unchanged: nothing is written
            finally:
                done.set()

    async with agent.test_context() as ctx:
        for user, partition in users.items():
            await ctx.put(user, partition=partition, wait=False)
        await asyncio.wait_for(done.wait(), 10)

    assert read[0] == dict.fromkeys(users)
    assert read[1] == {user: ShownPrices(after[user]).to_json() for user in users}
    assert sorted(changelog) == sorted(
        (partition, user, ShownPrices(after[user]).to_json()) for user, partition in users.items()
    )


def test_every_table_of_the_app_has_its_changelog_created_with_the_topics(
    tiny_model_dir: Path, tmp_path: Path
):
    settings = Settings(worker={"data_dir": tmp_path})
    runtime = Runtime.create(EncoderConfig(model_dir=tiny_model_dir), scorer=True)
    assert runtime.model is not None
    try:
        app = create_app(settings, runtime)
    finally:
        runtime.model.executor.shutdown()
    assert {table.changelog_topic.get_topic_name() for table in app.tables.values()} == {
        table.changelog for table in AppTables.of(settings).all()
    }
