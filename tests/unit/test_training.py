import contextlib
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from encoders.config import EncoderConfig
from encoders.dataset import build_dataset
from encoders.evaluation import make_ranker, parity_check, rank_targets
from encoders.layer_cache import (
    DiskStates,
    PooledStates,
    RecomputedStates,
    choose_cache,
    depth,
    freeze_below,
    upper_forward,
)
from encoders.model import (
    ITEMS_FILE,
    ScoringHead,
    history_rows,
    load_model_dir,
    tiny_random_model,
)
from encoders.ranker import Ranker
from encoders.training import (
    HISTORY_FILE,
    Candidates,
    TrainConfig,
    Trainer,
    encode_items,
    epoch_batches,
    full_softmax_loss,
    sampled_softmax_loss,
    save_trained,
    select_train,
    train,
)
from streams.records.inputs import Event, Item

CPU = EncoderConfig(device="cpu")


def make_data(users: int = 6, length: int = 6):
    items = [Item(str(i), f"Film number {i}", "Drama", base_price=4.0 + i) for i in range(20)]
    events = []
    for u in range(users):
        for step in range(length):
            item = str((u * 3 + step) % 20)
            events.append(
                Event(f"{u}-{step}", "purchase", f"u{u}", item, 1000 * step + u, rating=4.0)
            )
    events.sort(key=lambda e: e.ts)
    return build_dataset(events, items)


def _item_vectors(model, data, config):
    """The catalogue's vectors under the trained item tower, as the trainer computes them."""
    texts = [text for _, text in data.item_texts()]
    return encode_items(
        model.item_tower, model.tokenizer, texts, config.item_max_length, config.precision
    )


TINY = dict(
    epochs=2,
    batch_size=8,
    user_max_length=24,
    item_max_length=12,
    device="cpu",
    progress=False,
    patience=2,
)


def test_sampled_loss_with_all_items_and_no_correction_is_full_softmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 7)
    targets = torch.tensor([0, 3, 3, 6])
    candidates = torch.arange(7)
    full = full_softmax_loss(logits, targets)
    sampled = sampled_softmax_loss(logits, candidates, targets, torch.zeros(7))
    assert sampled.item() == pytest.approx(full.item(), rel=1e-6)


def test_log_q_correction_subtracts_log_expected_counts():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    candidates = torch.tensor([4, 9, 2])
    log_q = torch.log(torch.tensor([0.5, 2.0, 1.0]))
    got = sampled_softmax_loss(logits, candidates, torch.tensor([9]), log_q)
    want = F.cross_entropy((logits - log_q).unsqueeze(0).squeeze(0), torch.tensor([1]))
    assert got.item() == pytest.approx(want.item())


def test_duplicate_target_candidates_are_masked():
    logits = torch.tensor([[3.0, 0.0, 3.0]])
    candidates = torch.tensor([5, 1, 5])  # target 5 appears twice
    got = sampled_softmax_loss(logits, candidates, torch.tensor([5]), torch.zeros(3))
    want = -torch.log_softmax(torch.tensor([3.0, 0.0]), 0)[0]
    assert got.item() == pytest.approx(want.item())


def test_candidates_contain_targets():
    draw = Candidates(torch.tensor([5, 0, 1, 9]), negatives=3, batch_size=2)
    rows, log_q = draw.draw(torch.tensor([1, 2]), torch.Generator().manual_seed(0))
    assert {1, 2} <= set(rows.tolist())
    assert rows.shape == log_q.shape and torch.isfinite(log_q).all()


@pytest.mark.parametrize("buckets", [0, 4])
def test_epoch_batches_cover_every_example_once(buckets):
    lengths = torch.randint(60, 128, (1000,), generator=torch.Generator().manual_seed(1))
    batches = epoch_batches(lengths, 64, buckets, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(1000))
    assert [len(b) for b in batches].count(64) >= len(batches) - 4
    if not buckets:  # the plain order is the one training has always drawn
        plain = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
        assert torch.equal(torch.cat(batches), plain)


def test_length_buckets_cut_each_batch_to_similar_lengths():
    lengths = torch.randint(60, 128, (4096,), generator=torch.Generator().manual_seed(1))

    def mean_width(buckets: int) -> float:
        batches = epoch_batches(lengths, 128, buckets, torch.Generator().manual_seed(0))
        return float(torch.stack([lengths[b].max() for b in batches]).float().mean())

    assert mean_width(0) > 120
    assert mean_width(8) < 0.85 * mean_width(0)
    # The batches themselves are shuffled: not in order of length.
    batches = epoch_batches(lengths, 128, 8, torch.Generator().manual_seed(0))
    widths = [int(lengths[b].max()) for b in batches]
    assert widths != sorted(widths)


def test_select_train_keeps_most_recent_per_user():
    data = make_data()
    kept = select_train(data.train, 2)
    u0 = [e.target for e in data.train if e.user_id == "u0"]
    assert [e.target for e in kept if e.user_id == "u0"] == u0[-2:]
    assert select_train(data.train, 0) == list(data.train)


def _tokenize(model, max_length):
    def tokenize(texts):
        batch = model.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"]

    return tokenize


TEXTS = ["a much longer summary text than the others", "a short one", "mid length text"]


@pytest.mark.parametrize("chunk", [1, 2, 256])
@pytest.mark.parametrize("where", ["disk", "recompute"])
def test_split_forward_equals_full_tower(tmp_path, chunk, where):
    # Rows of different lengths, in batches cut to their longest row: the
    # file holds each row's tokens at a fixed width, read back up to the batch's.
    model = tiny_random_model()
    tower = model.user_tower
    tokenize = _tokenize(model, 24)
    split = freeze_below(tower, 1)
    assert split == 1
    assert not any(p.requires_grad for p in tower.encoder.embeddings.parameters())
    if where == "disk":
        states = DiskStates(TEXTS, tokenize, tmp_path / "s", 24, tower.dim, torch.float32)
        states.fill(tower, split, torch.arange(3), contextlib.nullcontext, batch_size=chunk)
        assert (tmp_path / "s").stat().st_size == 3 * 24 * tower.dim * 4
    else:
        states = RecomputedStates(TEXTS, tokenize, tower, split, contextlib.nullcontext)
    ids, mask = tokenize(TEXTS)
    assert states.lengths.tolist() == mask.sum(1).tolist()
    with torch.no_grad():
        full = tower(ids, mask).embedding
        for index in ([0, 1, 2], [2, 1], [1]):
            hidden, part_mask = states.batch(torch.tensor(index))
            assert hidden.shape[1] == int(mask[index].sum(1).max())
            part = upper_forward(tower, hidden, part_mask, split)
            torch.testing.assert_close(part, full[index], atol=1e-5, rtol=1e-5)


def test_a_frozen_tower_keeps_one_pooled_vector_per_text():
    model = tiny_random_model()
    tower = model.user_tower
    tokenize = _tokenize(model, 24)
    states = PooledStates(TEXTS, tokenize, tower, contextlib.nullcontext, batch_size=2)
    assert states.vectors.shape == (3, tower.dim)
    ids, mask = tokenize(TEXTS)
    with torch.no_grad():
        hidden, part_mask = states.batch(torch.tensor([2, 0]))
        part = upper_forward(tower, hidden, part_mask, depth(tower))
        torch.testing.assert_close(part, tower(ids, mask).embedding[[2, 0]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("asked", "layers", "passes", "size", "want"),
    [
        ("auto", 0, 5.0, 10, "pooled"),
        ("disk", 0, 5.0, 10, "pooled"),
        ("auto", 2, 2.0, 10, "disk"),
        ("auto", 2, 1.5, 10, "recompute"),  # a file read once saves nothing
        ("auto", 2, 2.0, 200, "recompute"),  # over the budget
        ("recompute", 2, 9.0, 10, "recompute"),
        ("disk", 2, 0.1, 200, "disk"),
    ],
)
def test_choose_cache(asked, layers, passes, size, want):
    got = choose_cache(
        asked, trained_layers=layers, passes=passes, disk_bytes=size, disk_budget=100
    )
    assert got == want


@pytest.mark.parametrize("lower_cache", ["disk", "recompute"])
def test_disk_and_recomputed_states_train_the_same_model(lower_cache):
    data = make_data()
    config = TrainConfig(lower_cache=lower_cache, precision="fp32", **TINY)
    result = train(tiny_random_model(), data, config)
    reference = train(tiny_random_model(), data, replace_config(config, lower_cache="disk"))
    assert result.history[0].loss == pytest.approx(reference.history[0].loss, rel=1e-4)
    assert result.first_step_loss == pytest.approx(reference.first_step_loss, rel=1e-4)


def replace_config(config, **changes):
    return config.model_copy(update=changes)


def test_max_steps_stops_training_and_validates(tmp_path):
    data = make_data()
    config = TrainConfig(**{**TINY, "epochs": 5, "patience": 5}, max_steps=3)
    result = train(tiny_random_model(), data, config)
    assert result.steps == 3 and len(result.history) == 1
    assert result.seconds_per_step > 0 and math.isfinite(result.first_step_loss)
    save_trained(result, data, config, tmp_path)
    saved = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert saved["steps"] == 3 and saved["processes"] == 1


def test_head_cold_items_get_text_score_only():
    head = ScoringHead(0.5, 2, item_ids=("a", "b"), id_dim=3)
    with torch.no_grad():
        head.item_bias.fill_(1.0)
        head.item_embedding.fill_(1.0)
    rows = head.rows_for(("b", "new"))
    assert rows.tolist() == [1, -1]
    users = torch.tensor([[1.0, 0.0, 0.0]])
    items = torch.zeros(2, 3)
    scores = head(users, items, rows)
    assert scores[0, 1].item() == 0.0
    assert scores[0, 0].item() == pytest.approx(2.0 * 1.0 + 1.0)


def test_history_rows_are_most_recent_first_and_skip_unknown_items():
    rows = history_rows([("b", "zz", "a", "b"), ()], {"a": 0, "b": 1}, 2)
    assert rows.tolist() == [[1, 0], [-1, -1]]


def test_head_pools_recent_items_by_recency_weight():
    head = ScoringHead(0.5, 2, item_ids=("a", "b"), id_dim=2, history=2, dim=2)
    with torch.no_grad():
        head.history_map.copy_(torch.eye(2))
        head.recency.copy_(torch.tensor([math.log(3.0), 0.0]))  # weights 3/4, 1/4
        head.item_embedding.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    users = torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]])
    history = torch.tensor([[0, 1], [1, -1], [-1, -1]])
    text = head.with_history(users, items, None, history, features=False)
    expected = torch.tensor([[0.5 + 0.75, 0.5 + 0.25], [0.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(text, expected)
    # With the item features on, history items carry their ID embedding too.
    with_ids = head.with_history(users, items, torch.tensor([0, 1]), history)
    torch.testing.assert_close(with_ids[1], torch.tensor([0.0, 11.0]))
    # Row order of the scored items may differ from the head's: item_rows maps them.
    swapped = head.with_history(users, items.flip(0), torch.tensor([1, 0]), history)
    torch.testing.assert_close(swapped[1], torch.tensor([11.0, 0.0]))


def test_history_changes_scores_and_serving_matches_the_evaluator(tmp_path):
    data = make_data()
    config = TrainConfig(train_layers=0, history=4, **TINY)
    result = train(tiny_random_model(), data, config)
    with torch.no_grad():  # a strong, random history map: history must move the ranking
        result.model.head.history_map.normal_(0.0, 5.0)
    save_trained(result, data, config, tmp_path)
    loaded = load_model_dir(tmp_path)
    assert loaded.spec.history == loaded.head.history == 4
    torch.testing.assert_close(loaded.head.history_map, result.model.head.history_map)
    parity = parity_check(loaded, data, CPU)
    assert parity.users == len(data.test) and parity.ok, parity
    ranker = make_ranker(loaded, data, CPU, torch.device("cpu"))
    blind = [replace(e, recent=()) for e in data.test]
    assert not torch.allclose(ranker.scores(list(data.test)), ranker.scores(blind))


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_train_saves_loadable_model_that_serves_like_the_evaluator(tmp_path, loss):
    data = make_data()
    config = TrainConfig(loss=loss, negatives=5, rating_weight=0.1, encoder_lr=1e-3, **TINY)
    result = train(tiny_random_model(), data, config)
    assert 1 <= len(result.history) <= 2
    assert all(torch.isfinite(torch.tensor(e.loss)) for e in result.history)
    assert result.best_valid_ndcg == max(e.valid_ndcg for e in result.history)
    save_trained(result, data, config, tmp_path)
    loaded = load_model_dir(tmp_path)
    assert loaded.spec.user_max_length == 24 and loaded.spec.item_ids
    assert loaded.head.item_ids == tuple(i.item_id for i in data.items)
    assert json.loads((tmp_path / ITEMS_FILE).read_text())["item_ids"] == list(loaded.head.item_ids)
    # No item vectors beside the model: each worker embeds with its own scorer.
    assert not list(tmp_path.glob("*index*"))
    history = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert history["best_epoch"] == result.best_epoch
    # The reloaded model reproduces the best validation NDCG the trainer measured.
    ranker = make_ranker(loaded, data, CPU, torch.device("cpu"))
    ranks = rank_targets(ranker, data, data.valid)
    from encoders.metrics import ndcg

    assert ndcg(ranks) == pytest.approx(result.best_valid_ndcg, abs=1e-3)
    serving = Ranker(loaded, CPU)
    index = serving.build_index(data.item_texts())
    trained = _item_vectors(result.model, data, config)
    assert torch.allclose(index.embeddings, trained, atol=1e-5)


@pytest.mark.parametrize("buckets", [0, 2])
def test_text_only_training_has_no_item_table(tmp_path, buckets):
    data = make_data()
    config = TrainConfig(
        item_ids=False, item_bias=False, train_layers=0, length_buckets=buckets, **TINY
    )
    result = train(tiny_random_model(), data, config)
    assert result.model.head.item_embedding is None and result.model.head.item_bias is None
    assert result.model.head.rows_for(("1",)) is None
    save_trained(result, data, config, tmp_path)
    loaded = load_model_dir(tmp_path)
    assert loaded.head.item_embedding is None and loaded.head.rows_for(("1",)) is None


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_id_dropout_trains_steps_with_the_item_features_off(dropout):
    data = make_data()
    config = TrainConfig(train_layers=0, history=4, id_dropout=dropout, **TINY)
    model = tiny_random_model()
    result = train(model, data, config)
    head = result.model.head
    assert head.item_embedding is not None and head.item_bias is not None
    # Created at training start: zero ID embedding and bias, so any change is a gradient step.
    moved = bool(head.item_embedding.abs().sum() > 0 or head.item_bias.abs().sum() > 0)
    assert moved == (dropout == 0.0)
    assert bool(head.history_map.abs().sum() > 0)  # the text path trained either way


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_item_tower_training_moves_its_top_layers_and_serves_from_them(tmp_path, loss):
    data = make_data()
    config = TrainConfig(
        train_layers=0,
        item_train_layers=1,
        item_refresh=2,
        item_ids=False,
        item_bias=False,
        encoder_lr=1e-2,
        loss=loss,
        negatives=5,
        item_negatives=4,
        precision="fp32",
        **TINY,
    )
    base = tiny_random_model()
    before = {k: v.clone() for k, v in base.item_tower.encoder.state_dict().items()}
    trainer = Trainer(base, data, config)
    result = trainer.fit()
    model = result.model
    # The base model is untouched; the user tower stays the frozen base.
    for key, value in base.item_tower.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.user_tower is base.user_tower and model.item_tower is not base.item_tower
    trained = model.item_tower.encoder.state_dict()
    moved = {k for k in trained if not torch.equal(trained[k], before[k])}
    assert moved and all(k.startswith("encoder.layer.1.") for k in moved), moved
    save_trained(result, data, config, tmp_path)
    loaded = load_model_dir(tmp_path)
    assert not loaded.spec.shared_towers
    # The stored item tower is the trained one, and serving matches the evaluator.
    vectors = _item_vectors(model, data, config)
    index = Ranker(loaded, CPU).build_index(data.item_texts())
    assert torch.allclose(index.embeddings, vectors, atol=1e-5)
    frozen = Ranker(base, CPU).build_index(data.item_texts())
    assert not torch.allclose(frozen.embeddings, vectors, atol=1e-3)
    parity = parity_check(loaded, data, CPU)
    assert parity.ok, parity
    # The trainer's cache, refreshed after the best weights came back, is the full tower's.
    torch.testing.assert_close(trainer.item_vectors, vectors, atol=5e-3, rtol=0)


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_micro_batches_take_the_same_step_as_the_whole_batch(loss):
    data = make_data(users=8, length=8)

    def run(micro: int):
        model = tiny_random_model(history=0)
        config = model.user_tower.encoder.config
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
        settings = TrainConfig(
            micro_batch_size=micro,
            loss=loss,
            negatives=5,
            rating_weight=0.1,
            train_layers=1,
            history=4,
            precision="fp32",
            **{**TINY, "epochs": 1},
        )
        return train(model, data, settings)

    whole, micro = run(0), run(3)  # batches of 8 cut into 3 + 3 + 2
    assert micro.first_step_loss == pytest.approx(whole.first_step_loss, rel=1e-5)
    assert micro.history[0].loss == pytest.approx(whole.history[0].loss, rel=1e-4)
    for (name, p), q in zip(whole.model.named_parameters(), micro.model.parameters(), strict=True):
        torch.testing.assert_close(q, p, atol=1e-4, rtol=1e-4, msg=name)
