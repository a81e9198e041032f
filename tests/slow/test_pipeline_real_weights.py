"""The stream with the real pre-trained MiniLM, checked against the offline scorer."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import torch

from encoders.behaviour import StateConfig, render_summary
from encoders.config import EncoderConfig
from encoders.model import load_pretrained
from encoders.movielens import convert
from encoders.records import item_from_dict
from encoders.scorer import BatchScorer
from streams.collect import TopicCollector, latest_recommendations
from tests.integration.data import expected_states
from tests.kafka_support import Pipeline

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.timeout(600)]


def test_stream_with_pretrained_minilm_matches_offline_scorer(bootstrap: str, tmp_path: Path):
    data = convert(tmp_path / "ml")
    items = [orjson.loads(line) for line in data.items_path.read_bytes().splitlines()]
    log = [orjson.loads(line) for line in data.events_path.read_bytes().splitlines()[:400]]
    pipe = Pipeline(bootstrap, model_dir=None, root=tmp_path)  # type: ignore[arg-type]
    pipe.create()
    try:
        pipe.send("items", items, key_field="item_id")
        pipe.start_worker()
        pipe.send("events", log)
        expected = expected_states(log, items)
        name = pipe.topic("recommendations")
        collector = TopicCollector(bootstrap, [name])

        def done() -> bool:
            latest = latest_recommendations(collector.records[name])
            return all(
                u in latest and latest[u]["state_version"] >= s.version for u, s in expected.items()
            )

        assert collector.until(done, 400), pipe.log()
        collector.close()
    finally:
        for proc in pipe.workers:
            proc.kill()
    latest = latest_recommendations(collector.records[name])
    assert latest and all(r["model_version"] == "zero-shot-minilm" for r in latest.values())

    torch.set_num_threads(2)
    scorer = BatchScorer(load_pretrained(), EncoderConfig(device="cpu"))
    catalog = {i["item_id"]: item_from_dict(i) for i in items}
    index = scorer.build_index([(k, v.text()) for k, v in catalog.items()])
    users = sorted(expected)
    titles = lambda i: catalog[i].title if i in catalog else None  # noqa: E731
    summaries = [render_summary(expected[u], titles, StateConfig()) for u in users]
    recent = [expected[u].recent_items() for u in users]
    exclude = [expected[u].interacted() for u in users]
    offline = scorer.recommend(summaries, recent, exclude, index)
    agree = sum(
        [e["item_id"] for e in latest[u]["items"]] == [i for i, _ in ranked]
        for u, ranked in zip(users, offline, strict=True)
    )
    # Batch composition can reorder near-ties in float32; the sets must still agree.
    assert agree >= 0.9 * len(users), f"{agree}/{len(users)} users with identical top-10"
    for u, ranked in zip(users, offline, strict=True):
        assert len({e["item_id"] for e in latest[u]["items"]} & {i for i, _ in ranked}) >= 8
