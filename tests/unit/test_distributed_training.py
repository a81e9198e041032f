"""Data-parallel training: two CPU processes (gloo, DDP) take the steps one process takes."""

import json
import math

import pytest
import torch

from encoders.model import load_model_dir, save_model_dir, tiny_random_model
from encoders.train_config import TrainConfig
from encoders.training import Parallel, local_share
from streams.offline.training_run import TorchrunPlace, TrainJob, torchrun_config, train_model
from tests.unit.test_training import make_data


def test_local_shares_weight_the_global_mean():
    index = torch.arange(10, 15)  # 5 rows over 2 processes: 3 and 2
    shares = [local_share(index, Parallel(rank, 2)) for rank in range(2)]
    assert [s[0].tolist() for s in shares] == [[10, 12, 14], [11, 13]]
    # Per-process mean losses weighted like this, then averaged, give the global mean.
    losses = torch.rand(5)
    means = [losses[s[0] - 10].mean() * s[1] for s in shares]
    assert float(sum(means) / 2) == pytest.approx(float(losses.mean()))
    lone, weight = local_share(torch.tensor([7]), Parallel(1, 2))
    assert lone.tolist() == [7] and weight == 0.0


def test_torchrun_place_and_multi_machine_runs_recompute():
    assert TorchrunPlace.of({}) is None
    assert TorchrunPlace.of({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    place = TorchrunPlace.of(env)
    assert place == TorchrunPlace(3, 4, 1, 2)
    config = TrainConfig()
    assert torchrun_config(place, config).lower_cache == "recompute"
    assert torchrun_config(TorchrunPlace(0, 2, 0, 2), config).lower_cache == "auto"


def _base(tmp_path):
    # No dropout: each process draws its own dropout masks, which would make
    # the processes' steps differ from one process's by noise, not by DDP.
    model = tiny_random_model(history=0)
    config = model.user_tower.encoder.config
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    save_model_dir(model, tmp_path / "base")
    return tmp_path / "base"


@pytest.mark.parametrize("lower_cache", ["disk", "recompute"])
def test_two_processes_take_the_steps_of_one(tmp_path, lower_cache):
    data = make_data(users=8, length=8)
    config = TrainConfig(
        epochs=2,
        patience=2,
        batch_size=8,
        user_max_length=24,
        item_max_length=12,
        train_layers=1,
        history=4,
        device="cpu",
        precision="fp32",
        progress=False,
        threads=1,
        lower_cache=lower_cache,
    )
    base = _base(tmp_path)
    one = train_model(TrainJob(data, config, tmp_path / "one", base))
    two = train_model(TrainJob(data, config, tmp_path / "two", base), processes=2)
    assert one["processes"] == 1 and two["processes"] == 2
    assert two["steps"] == one["steps"] == 2 * math.ceil(len(data.train) / 8)
    assert two["first_step_loss"] == pytest.approx(one["first_step_loss"], rel=1e-5)
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["valid_ndcg"] == pytest.approx(a["valid_ndcg"], abs=1e-6)
    # The model rank 0 wrote is the one a single process trains.
    a, b = load_model_dir(tmp_path / "one"), load_model_dir(tmp_path / "two")
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-4, rtol=1e-4, msg=name)
    moved = load_model_dir(base).user_tower.encoder.encoder.layer[1].output.dense.weight
    assert not torch.allclose(b.user_tower.encoder.encoder.layer[1].output.dense.weight, moved)
    assert json.loads((tmp_path / "two" / "training.json").read_text())["processes"] == 2
