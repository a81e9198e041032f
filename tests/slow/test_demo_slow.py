"""`make demo`'s path with the real MiniLM: it trains its model, beats popularity and serves it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from encoders.model import MODEL_FILE
from streams.offline.demo import BAD_LINES
from streams.offline.demo_model import MODEL_NAME
from streams.offline.local import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.timeout(900)]


def test_demo_trains_a_model_above_popularity_and_serves_it(bootstrap: str, tmp_path: Path):
    out = tmp_path / "demo-out"
    # A smaller recipe than `make demo`'s (5 examples per user instead of 20)
    # and a shorter slice, to keep CI within a few minutes.
    command = [
        sys.executable,
        "-m",
        "streams",
        "demo",
        "--out",
        str(out),
        "--events",
        "1000",
        "--model-cache",
        str(tmp_path / "models"),
        "--train-per-user",
        "5",
        "--bootstrap",
        bootstrap,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    served = json.loads((out / "demo-model.json").read_text())
    scores = {s["name"]: s for s in served["scores"]}
    assert scores[MODEL_NAME]["ndcg"] > scores["popularity"]["ndcg"], scores
    assert scores[MODEL_NAME]["users"] == scores["popularity"]["users"] > 0
    printed = " ".join(run.stdout.replace("\u2502", " ").split())  # table borders out
    assert f"{MODEL_NAME} {scores[MODEL_NAME]['ndcg']:.4f}" in printed, run.stdout
    assert f"popularity {scores['popularity']['ndcg']:.4f}" in printed, run.stdout
    # The worker served the fine-tuned model, not the zero-shot encoder.
    versions = {
        json.loads(line)["model_version"]
        for line in (out / "recommendations.jsonl").read_text().splitlines()
    }
    spec = json.loads((Path(served["model_dir"]) / MODEL_FILE).read_text())
    assert versions == {spec["model_version"]} and spec["item_ids"], versions
    # The worker served its metrics where the demo said; its last scrape counted the bad lines.
    assert re.search(r"^metrics: http://127\.0\.0\.1:\d+/metrics$", run.stdout, re.M), run.stdout
    metrics = (out / "metrics.txt").read_text()
    assert f'recprice_dead_letters_total{{source="events"}} {len(BAD_LINES)}.0' in metrics, metrics
    assert re.search(r"^recprice_events_ingested_total [1-9]", metrics, re.M), metrics
