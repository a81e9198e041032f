"""encoders.vector_cache: item vectors reused across restarts, and only when they are right."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from encoders.config import EncoderConfig
from encoders.model import tiny_random_model
from encoders.ranker import Ranker, text_key
from encoders.vector_cache import (
    build_index_cached,
    load_vectors,
    save_vectors,
    update_index_cached,
)
from streams.records.inputs import Item
from streams.worker.catalog import Catalog
from streams.worker.model_thread import ModelThread

ITEMS = [(f"i{n}", f"movie number {n} about {w}") for n, w in enumerate(["cats", "dogs", "war"])]
CPU = EncoderConfig(device="cpu")


class Counting(Ranker):
    """A scorer that counts the item texts its tower embeds."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(tiny_random_model(seed), CPU)
        self.embedded: list[str] = []

    def _encode(self, texts, max_length, *, user):  # type: ignore[no-untyped-def]
        if not user:
            self.embedded.extend(texts)
        return super()._encode(texts, max_length, user=user)


def test_a_restart_reuses_every_vector_and_embeds_nothing(tmp_path: Path):
    path = tmp_path / "vectors.safetensors"
    first = Counting()
    built = build_index_cached(first, ITEMS, path)
    assert len(first.embedded) == 3 and path.is_file()

    again = Counting()
    reused = build_index_cached(again, ITEMS, path)

    assert again.embedded == []
    assert reused.item_ids == built.item_ids and reused.version == built.version
    assert torch.equal(reused.embeddings, built.embeddings)


def test_only_new_or_changed_texts_are_embedded(tmp_path: Path):
    path = tmp_path / "vectors.safetensors"
    build_index_cached(Counting(), ITEMS, path)
    changed = [ITEMS[0], ("i1", "a brand new text"), ITEMS[2], ("i7", "new item")]

    ranker = Counting()
    index = build_index_cached(ranker, changed, path)

    assert sorted(ranker.embedded) == ["a brand new text", "new item"]
    fresh = Counting().build_index(changed)
    assert index.item_ids == fresh.item_ids
    assert torch.allclose(index.embeddings, fresh.embeddings, atol=1e-6)
    # The file now holds the new set: a third start embeds nothing.
    third = Counting()
    build_index_cached(third, changed, path)
    assert third.embedded == []


def test_another_item_tower_never_reuses_the_vectors(tmp_path: Path):
    path = tmp_path / "vectors.safetensors"
    build_index_cached(Counting(seed=0), ITEMS, path)
    other = Counting(seed=1)
    assert other.item_tower_key != Counting(seed=0).item_tower_key

    index = build_index_cached(other, ITEMS, path)

    assert len(other.embedded) == 3
    assert torch.allclose(index.embeddings, Counting(seed=1).build_index(ITEMS).embeddings)


def test_an_unreadable_file_is_ignored_and_replaced(tmp_path: Path, caplog):
    path = tmp_path / "vectors.safetensors"
    path.write_bytes(b"not a safetensors file")
    ranker = Counting()

    with caplog.at_level(logging.WARNING, logger="encoders.vector_cache"):
        build_index_cached(ranker, ITEMS, path)

    assert len(ranker.embedded) == 3 and "could not be read" in caplog.text
    assert len(load_vectors(path, ranker.item_tower_key)) == 3


def test_saved_vectors_are_keyed_by_text(tmp_path: Path):
    ranker = Counting()
    index = ranker.build_index(ITEMS)
    path = tmp_path / "v.safetensors"
    save_vectors(path, "tower-a", index)

    assert load_vectors(path, "tower-b") == {}
    loaded = load_vectors(path, "tower-a")
    assert set(loaded) == {text_key(t) for _, t in ITEMS}
    for row, text in enumerate(index.texts):
        assert torch.equal(loaded[text_key(text)], index.embeddings[row])


def test_updates_are_stored_only_when_something_was_embedded(tmp_path: Path):
    path = tmp_path / "vectors.safetensors"
    ranker = Counting()
    index = build_index_cached(ranker, ITEMS, path)
    stamp = path.stat().st_mtime_ns
    assert update_index_cached(ranker, index, ITEMS[:1], path) is index
    assert path.stat().st_mtime_ns == stamp

    updated = update_index_cached(ranker, index, [("i9", "another film")], path)

    assert set(load_vectors(path, ranker.item_tower_key)) == {text_key(t) for t in updated.texts}


async def test_a_restarted_catalog_embeds_nothing(tmp_path: Path):
    path = tmp_path / "worker-data" / "item-vectors.safetensors"
    items = [Item(i, f"Title {i}", "Drama", 10.0) for i in ("a", "b", "c")]

    async def start() -> tuple[Counting, Catalog]:
        ranker = Counting()
        model = ModelThread.start(ranker)
        catalog = Catalog(model, path)
        for item in items:
            catalog.apply(item)
        await catalog.refresh_index()
        model.executor.shutdown()
        return ranker, catalog

    first, before = await start()
    second, after = await start()

    assert len(first.embedded) == 3 and second.embedded == []
    assert before.index is not None and after.index is not None
    assert torch.equal(before.index.embeddings, after.index.embeddings)
    assert after.index_ready.is_set()


def test_items_with_the_same_text_are_embedded_once():
    ranker = Counting()
    index = ranker.build_index([("a", "same text"), ("b", "same text"), ("c", "other")])

    assert sorted(ranker.embedded) == ["other", "same text"]
    assert torch.equal(index.embeddings[0], index.embeddings[1])
    assert not torch.equal(index.embeddings[0], index.embeddings[2])


def test_a_file_that_cannot_be_written_does_not_stop_the_index(tmp_path: Path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    ranker = Counting()

    with caplog.at_level(logging.WARNING, logger="encoders.vector_cache"):
        index = build_index_cached(ranker, ITEMS, blocker / "vectors.safetensors")

    assert len(index) == 3 and "could not be stored" in caplog.text
