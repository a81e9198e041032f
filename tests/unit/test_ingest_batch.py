"""The ingest agent's batch body without a broker: what is dead-lettered, what is forwarded."""

import asyncio
import logging
from dataclasses import dataclass, field

import orjson

from encoders.behaviour import StateConfig
from streams.records.inputs import Item
from streams.settings import Settings
from streams.topics import AppTopics
from streams.worker.flows.ingest import ingest_batch
from streams.worker.wiring import ProducerSink

TOPICS = AppTopics.of(Settings())
ITEMS = {
    "a": Item("a", "Heat (1995)", "Action", 10.0),
    "b": Item("b", "Fargo (1996)", "Crime", 12.0),
    "boom": Item("boom", "Boom (1999)", "Drama", 9.0),
}


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass(frozen=True)
class Received:
    value: bytes
    message: Message


@dataclass
class Recorder:
    """A sink that keeps what it is given."""

    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    dead: list[tuple[Received, str]] = field(default_factory=list)

    async def send(self, records):
        self.sent.extend(records)

    async def dead_letter(self, received, reason):
        self.dead.append((received, reason))

    def to(self, topic):
        return [(key, value) for name, key, value in self.sent if name == topic.name]


@dataclass
class DictTable:
    data: dict[str, bytes] = field(default_factory=dict)

    def get(self, key, via):
        return self.data.get(key)

    def set(self, key, value, via):
        self.data[key] = value

    async def flush(self):
        pass


class Exploding(dict):
    """A catalogue whose look-up of one item fails, as a bug would."""

    def get(self, key, default=None):
        if key == "boom":
            raise RuntimeError("catalogue broke")
        return super().get(key, default)


def event(n, kind="click", user="u1", item="a"):
    return {"event_id": f"e{n}", "type": kind, "user_id": user, "item_id": item, "ts": 1_000 + n}


class Batch:
    """Records as the agent would take them from the events topic, one offset each."""

    def __init__(self):
        self.records: list[Received] = []

    def add(self, value, key=None):
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        if key is None and isinstance(value, dict):
            key = value["user_id"].encode()
        received = Received(raw, Message(TOPICS.events.name, 0, len(self.records), key))
        self.records.append(received)
        return received


def run(batch, table, items=ITEMS):
    sink = Recorder()
    asyncio.run(
        ingest_batch(
            batch.records,
            table,
            sink,
            items=items,
            config=StateConfig(),
            topics=TOPICS,
            received_ms=5_000,
        )
    )
    return sink


def test_invalid_input_and_failed_events_are_dead_lettered_with_their_bytes_and_reason():
    batch = Batch()
    good = [batch.add(event(1)), batch.add(event(2, "purchase", item="b"))]
    not_json = batch.add(b'{"event_id": "e3", "type": ', key=b"u1")
    wrong_key = batch.add(event(4, user="u2"), key=b"u1")
    failing = batch.add(event(5, "click", user="u3", item="boom"))
    good.append(batch.add(event(6, "view", user="u3", item="b")))
    table = DictTable()
    sink = run(batch, table, items=Exploding(ITEMS))

    dead = {received.message.offset: (received, reason) for received, reason in sink.dead}
    assert sorted(dead) == [
        not_json.message.offset,
        wrong_key.message.offset,
        failing.message.offset,
    ]
    for original in (not_json, wrong_key, failing):
        received, _ = dead[original.message.offset]
        assert received.value == original.value
        assert received.message.topic == TOPICS.events.name
    assert "does not match user_id" in dead[wrong_key.message.offset][1]
    assert "catalogue broke" in dead[failing.message.offset][1]
    assert dead[not_json.message.offset][1]
    # The valid events still change their users' state and are scored.
    assert sorted(table.data) == ["u1", "u3"]
    assert sorted(key for key, _ in sink.to(TOPICS.scoring)) == [b"u1", b"u3"]


def test_valid_events_are_not_dead_lettered():
    batch = Batch()
    for n in range(1, 7):
        batch.add(event(n, "purchase" if n % 3 == 0 else "click", user=f"u{n % 2}"))
    sink = run(batch, DictTable())
    assert sink.dead == []
    assert len(sink.to(TOPICS.scoring)) == 2


def test_purchases_that_change_state_go_to_purchases_as_one_array_per_user():
    table = DictTable()
    first = Batch()
    already = event(1, "purchase", user="u1", item="a")
    first.add(already)
    assert [orjson.loads(v) for _, v in run(first, table).to(TOPICS.purchases)] == [[already]]

    batch = Batch()
    bought_b = event(2, "purchase", user="u1", item="b")
    bought_a = event(4, "purchase", user="u1", item="a")
    other = event(5, "purchase", user="u2", item="b")
    batch.add(already)  # re-delivered: already applied, not forwarded again
    batch.add(bought_b)
    batch.add(event(3, "click", user="u1", item="b"))
    batch.add(bought_a)
    batch.add(bought_b)  # duplicate inside the batch
    batch.add(event(6, "view", user="u3", item="a"))
    batch.add(other)
    sink = run(batch, table)

    forwarded = sink.to(TOPICS.purchases)
    assert sorted(key for key, _ in forwarded) == [b"u1", b"u2"]
    arrays = {key: value for key, value in forwarded}
    assert orjson.loads(arrays[b"u1"]) == [bought_b, bought_a]
    assert orjson.loads(arrays[b"u2"]) == [other]
    # The original bytes of each purchase, in one JSON array.
    assert arrays[b"u1"] == b"[" + orjson.dumps(bought_b) + b"," + orjson.dumps(bought_a) + b"]"
    assert sink.dead == []


def test_a_batch_without_new_purchases_forwards_none():
    batch = Batch()
    batch.add(event(1, "click"))
    batch.add(event(2, "view", user="u2"))
    sink = run(batch, DictTable())
    assert sink.to(TOPICS.purchases) == []
    assert len(sink.to(TOPICS.scoring)) == 2


def test_the_workers_sink_dead_letters_the_original_bytes_where_they_were_read():
    calls = []

    async def send_dead_letter(*args):
        calls.append(args)

    sink = ProducerSink(app=None, dead_letter=send_dead_letter)
    received = Received(b"\xff not utf-8", Message(TOPICS.events.name, 3, 17, b"u1"))
    asyncio.run(sink.dead_letter(received, "invalid JSON"))
    assert calls == [(TOPICS.events.name, 3, 17, b"\xff not utf-8", "invalid JSON")]


def test_an_event_that_fails_to_apply_is_logged_with_its_topic_partition(caplog):
    batch = Batch()
    batch.add(event(1, user="u3", item="boom"))
    with caplog.at_level(logging.ERROR, logger="streams.worker.flows.ingest"):
        run(batch, DictTable(), items=Exploding(ITEMS))
    [record] = caplog.records
    assert "could not apply event e1" in record.getMessage()
    assert record.partition == f"{TOPICS.events.name}-0"


def test_the_batch_returns_how_many_valid_events_it_applied():
    batch = Batch()
    batch.add(event(1))
    batch.add(event(1))  # a re-delivery: valid, applied, changes nothing
    batch.add(b"not json", key=b"u1")
    batch.add(event(2, user="u3", item="boom"))  # fails to apply
    batch.add(event(3, user="u3", item="b"))
    applied = asyncio.run(
        ingest_batch(
            batch.records,
            DictTable(),
            Recorder(),
            items=Exploding(ITEMS),
            config=StateConfig(),
            topics=TOPICS,
            received_ms=5_000,
        )
    )
    assert applied == 3
