"""Catalogue flow: the compacted ``items`` topic -> items table -> item index.

Every worker needs the whole catalogue (any user may be recommended any
item), so each worker keeps a full replica, like a Faust GlobalTable: a
dedicated consumer outside the consumer group reads every partition of the
compacted topic from the beginning. The compacted topic is the table's
changelog, so nothing else is persisted. Embedding runs in the model's
thread and swaps the index atomically; the event loop never waits on it. A
catalogue without a model (a worker without the scorer) keeps the items for
ingest and never embeds them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from streams.records.inputs import InvalidRecord, Item
from streams.settings import KafkaSettings
from streams.worker.model_thread import ModelThread
from streams.worker.sink import SendDeadLetter
from streams.worker.wiring import whole_topic_consumer

if TYPE_CHECKING:  # a worker without the scorer never loads torch
    from encoders.ranker import ItemIndex

log = logging.getLogger(__name__)

ITEM_VECTORS_FILE = "item-vectors.safetensors"
"""The catalogue's item vectors in the worker's data directory."""


class Catalog:
    """Items by id, plus the item index built from them."""

    def __init__(self, model: ModelThread | None = None, vectors: Path | None = None) -> None:
        self.items: dict[str, Item] = {}
        self.index: ItemIndex | None = None
        self.ready = asyncio.Event()
        """Set once the items present at start-up are loaded."""
        self.index_ready = asyncio.Event()
        """Set once those items are embedded."""
        self._model = model
        self._vectors = vectors
        """Where item vectors are kept across restarts (:mod:`encoders.vector_cache`)."""
        self._pending: dict[str, Item] = {}

    @property
    def embeds(self) -> bool:
        """Whether this catalogue builds an item index (it has a model)."""
        return self._model is not None

    def apply(self, item: Item) -> None:
        """Take a new or changed item; it reaches the index at the next refresh."""
        self.items[item.item_id] = item
        self._pending[item.item_id] = item

    async def refresh_index(self) -> None:
        """Embed pending items off the event loop and swap in the new index."""
        if self._model is None:
            raise RuntimeError("a catalogue without a model cannot embed items")
        if not self._pending and self.index is not None:
            return
        from encoders.vector_cache import build_index_cached, update_index_cached

        changed = [(i.item_id, i.text()) for i in self._pending.values()]
        self._pending = {}
        loop = asyncio.get_running_loop()
        current, ranker, executor = self.index, self._model.ranker, self._model.executor
        if current is None:
            self.index = await loop.run_in_executor(
                executor, build_index_cached, ranker, changed, self._vectors
            )
        else:
            self.index = await loop.run_in_executor(
                executor, update_index_cached, ranker, current, changed, self._vectors
            )
        self.index_ready.set()


async def follow_items(
    catalog: Catalog,
    kafka: KafkaSettings,
    topic: str,
    refresh_s: float,
    dead_letter: SendDeadLetter,
) -> None:
    """Read the items topic forever; set ``catalog.ready`` once caught up with start-up.

    Every ``refresh_s`` the catalogue embeds what changed, if it has a model.
    """
    consumer = whole_topic_consumer(kafka, topic)
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        # Everything below these offsets existed at start-up.
        targets = {tp: off for tp, off in (await consumer.end_offsets(tps)).items() if off > 0}
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while True:
            batches = await consumer.getmany(timeout_ms=int(refresh_s * 1000), max_records=5000)
            for tp, messages in batches.items():
                for msg in messages:
                    if msg.value is not None:
                        try:
                            catalog.apply(Item.from_json(msg.value))
                        except InvalidRecord as exc:
                            await dead_letter(
                                tp.topic, tp.partition, msg.offset, msg.value, str(exc)
                            )
                    if tp in targets and msg.offset + 1 >= targets[tp]:
                        del targets[tp]
            if not catalog.ready.is_set() and not targets:
                catalog.ready.set()
                log.info("catalogue loaded: %d items", len(catalog.items))
            if catalog.embeds and catalog.ready.is_set() and loop.time() >= next_refresh:
                await catalog.refresh_index()
                next_refresh = loop.time() + refresh_s
    finally:
        await consumer.stop()
