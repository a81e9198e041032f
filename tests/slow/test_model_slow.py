"""Real MiniLM weights on a MovieLens-100K slice: train, reload, evaluate, serve."""

import pytest
import torch

from encoders.config import EncoderConfig
from encoders.dataset import build_dataset
from encoders.evaluation import make_ranker, parity_check, rank_targets
from encoders.metrics import ndcg
from encoders.model import load_model_dir, load_pretrained
from encoders.train_config import TrainConfig
from encoders.training import save_trained, train
from streams.records.files import read_events, read_items

pytestmark = pytest.mark.slow

USERS = 150


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    movielens = pytest.importorskip("streams.offline.movielens")
    try:
        converted = movielens.convert(tmp_path_factory.mktemp("ml"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    events, _ = read_events(converted.events_path)
    items, _ = read_items(converted.items_path)
    users = sorted({e.user_id for e in events}, key=int)[:USERS]
    keep = set(users)
    return build_dataset([e for e in events if e.user_id in keep], items)


@pytest.mark.parametrize("item_layers", [0, 1])
def test_short_training_beats_zero_shot_and_serves_like_the_evaluator(
    movielens, tmp_path, item_layers
):
    torch.set_num_threads(2)
    config = TrainConfig(
        epochs=3,
        patience=3,
        train_layers=1,
        item_train_layers=item_layers,
        max_train_per_user=8,
        user_max_length=48,
        encoder_lr=1e-4,
        progress=False,
        device="cpu",
    )
    result = train(load_pretrained(), movielens, config)
    save_trained(result, movielens, config, tmp_path / "model")
    model = load_model_dir(tmp_path / "model")
    encoder = EncoderConfig(device="cpu")
    device = torch.device("cpu")
    tuned = ndcg(
        rank_targets(make_ranker(model, movielens, encoder, device), movielens, movielens.valid)
    )
    zero = ndcg(
        rank_targets(
            make_ranker(load_pretrained(), movielens, encoder, device), movielens, movielens.valid
        )
    )
    assert tuned == pytest.approx(result.best_valid_ndcg, abs=2e-3)
    assert tuned > zero
    parity = parity_check(model, movielens, encoder, users=64)
    assert parity.ok, parity
