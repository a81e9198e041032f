"""The demo's model: trained without the slice's users, keyed by what determines it, reused."""

import json

import pytest
from typer.testing import CliRunner

import streams.offline.demo
from encoders.behaviour import StateConfig
from encoders.config import EncoderConfig
from encoders.model import load_model_dir, tiny_random_model
from encoders.training import TrainResult, train
from streams.cli.main import app
from streams.offline.demo_model import (
    EVALUATION_FILE,
    MODEL_NAME,
    ModelChoice,
    cache_key,
    demo_recipe,
    key_fields,
    prepare_demo_model,
)
from streams.records.inputs import Event, Item

CPU = EncoderConfig(device="cpu")
TINY = dict(
    epochs=1,
    batch_size=8,
    user_max_length=24,
    item_max_length=12,
    device="cpu",
    progress=False,
)
SLICE = 10


def write_log(tmp_path):
    """12 users, 8 events each, interleaved in time; the first SLICE lines hold users 0-9."""
    items = [Item(str(i), f"Film number {i}", "Drama", base_price=4.0 + i) for i in range(30)]
    events = [
        Event(f"{u}-{step}", "purchase", f"u{u}", str((u * 5 + step) % 30), 100 * step + u, 4.0)
        for step in range(8)
        for u in range(12)
    ]
    events_path, items_path = tmp_path / "events.jsonl", tmp_path / "items.jsonl"
    events_path.write_bytes(b"".join(e.to_json() + b"\n" for e in events))
    items_path.write_bytes(b"".join(i.to_json() + b"\n" for i in items))
    return events_path, items_path


class CountingTrain:
    """Records each call's dataset; returns the base model as trained (no steps)."""

    def __init__(self):
        self.datasets = []

    def __call__(self, base, dataset, config):
        self.datasets.append(dataset)
        return TrainResult(base, (), 1, 0.0, 0.0)


def prepare(tmp_path, fake, recipe=None, n_events=SLICE):
    events_path, items_path = write_log(tmp_path)
    choice = ModelChoice(
        cache=tmp_path / "cache",
        recipe=recipe or demo_recipe(**TINY),
        train=fake,
        load_base=lambda: tiny_random_model(seed=3),
    )
    return prepare_demo_model(
        events_path, items_path, n_events, choice, StateConfig(), CPU, say=lambda _: None
    )


def test_training_set_leaves_out_every_event_of_the_slice_users(tmp_path):
    fake = CountingTrain()
    trained = prepare(tmp_path, fake)
    (dataset,) = fake.datasets
    slice_users = {f"u{u}" for u in range(SLICE)}
    users = {e.user_id for split in (dataset.train, dataset.valid, dataset.test) for e in split}
    assert users == {"u10", "u11"}
    assert not users & slice_users
    assert (trained.excluded_users, trained.excluded_events) == (SLICE, SLICE * 8)
    # Measured on the remaining users' test split, beside popularity and zero-shot.
    assert [s.name for s in trained.scores] == ["popularity", "zero-shot MiniLM", MODEL_NAME]
    assert all(s.users == 2 for s in trained.scores)


def test_cached_model_is_reused_without_training_again(tmp_path):
    fake = CountingTrain()
    first = prepare(tmp_path, fake)
    assert not first.reused and len(fake.datasets) == 1
    second = prepare(tmp_path, fake)
    assert second.reused and len(fake.datasets) == 1
    assert second.model_dir == first.model_dir
    assert second.scores == first.scores
    assert json.loads((first.model_dir / EVALUATION_FILE).read_text())["excluded_users"] == SLICE
    # Another slice size is another model.
    third = prepare(tmp_path, fake, n_events=SLICE - 2)
    assert not third.reused and len(fake.datasets) == 2
    assert third.model_dir != first.model_dir


def test_cache_key_changes_with_recipe_slice_data_and_state_but_not_run_settings():
    def key(recipe=None, n_events=3000, data="abc", state=None):
        return cache_key(
            key_fields(recipe or demo_recipe(), n_events, data, state or StateConfig())
        )

    base = key()
    assert key() == base
    assert key(demo_recipe(max_train_per_user=5)) != base
    assert key(demo_recipe(epochs=3)) != base
    assert key(n_events=2999) != base
    assert key(data="abd") != base
    assert key(state=StateConfig(window=10)) != base
    # How fast a run goes does not change what it learns.
    assert key(demo_recipe(threads=1, progress=False)) == base


@pytest.mark.parametrize("history", [0, 4])
def test_demo_recipe_trains_a_servable_model_with_item_features(tmp_path, history):
    calls = []

    def real_train(base, dataset, config):
        calls.append(config)
        return train(base, dataset, config)

    trained = prepare(tmp_path, real_train, demo_recipe(history=history, **TINY))
    (config,) = calls
    assert config.train_layers == 0 and config.item_ids and config.item_bias
    model = load_model_dir(trained.model_dir)
    assert model.spec.item_ids and model.head.history == history
    assert model.head.item_ids == tuple(str(i) for i in sorted(range(30), key=str))


def test_demo_command_passes_its_model_choice(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        streams.offline.demo, "run_demo", lambda *args, model: seen.append(model) or 0
    )
    runner = CliRunner()
    args = ["demo", "--out", str(tmp_path / "out"), "--model-cache", str(tmp_path / "c")]
    assert runner.invoke(app, [*args, "--train-per-user", "5"]).exit_code == 0
    assert runner.invoke(app, [*args, "--zero-shot"]).exit_code == 0
    assert runner.invoke(app, [*args, "--model", str(tmp_path)]).exit_code == 0
    trained, zero_shot, given = seen
    assert trained.cache == tmp_path / "c" and trained.recipe == demo_recipe(max_train_per_user=5)
    assert not trained.zero_shot and trained.model_dir is None
    assert zero_shot.zero_shot and given.model_dir == tmp_path
    both = runner.invoke(app, [*args, "--zero-shot", "--model", str(tmp_path)])
    assert both.exit_code == 2 and "exclude each other" in " ".join(both.output.split())
