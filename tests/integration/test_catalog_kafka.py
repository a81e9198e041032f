"""The catalogue follower on the real broker: a catalogue without a model never embeds items."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from encoders.config import EncoderConfig
from encoders.model import tiny_random_model
from encoders.ranker import Ranker
from streams.settings import KafkaSettings
from streams.worker.catalog import Catalog, follow_items
from streams.worker.model_thread import ModelThread
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

ITEMS = [
    {"item_id": f"i{k}", "title": f"Item {k}", "category": "c", "base_price": 10.0 + k}
    for k in range(5)
]


async def no_dead_letters(
    topic: str, partition: int, offset: int, raw: bytes | None, error: str
) -> None:
    raise AssertionError(f"unexpected dead letter {topic}[{partition}]@{offset}: {error}")


async def follow(bootstrap: str, topic: str, embed: bool) -> Catalog:
    """Follow ``topic`` until the items are loaded, then a few refresh periods more."""
    model = ModelThread.start(Ranker(tiny_random_model(), EncoderConfig())) if embed else None
    catalog = Catalog(model)
    task = asyncio.create_task(
        follow_items(catalog, KafkaSettings(bootstrap=bootstrap), topic, 0.05, no_dead_letters)
    )
    try:
        await asyncio.wait_for(catalog.ready.wait(), 60)
        if embed:
            await asyncio.wait_for(catalog.index_ready.wait(), 60)
        else:
            await asyncio.sleep(0.5)  # ten refresh periods in which nothing may be embedded
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if model is not None:
            model.executor.shutdown()
    return catalog


@pytest.mark.parametrize("embed", [False, True])
def test_items_are_embedded_only_when_the_catalog_has_a_model(
    bootstrap: str, tmp_path: Path, embed: bool
):
    pipe = Pipeline(bootstrap, None, tmp_path)
    pipe.create()
    pipe.send(pipe.topics.items, list(ITEMS), key_field="item_id")

    catalog = asyncio.run(follow(bootstrap, pipe.topics.items.name, embed))

    assert sorted(catalog.items) == [item["item_id"] for item in ITEMS]
    if embed:
        assert catalog.index is not None and len(catalog.index) == len(ITEMS)
    else:
        assert catalog.index is None and not catalog.index_ready.is_set()
