import json
import random

import pytest
import torch
from typer.testing import CliRunner

from encoders.config import EncoderConfig
from encoders.dataset import build_dataset
from encoders.evaluation import make_ranker, rank_targets
from encoders.metrics import ndcg
from encoders.model import save_model_dir, tiny_random_model
from encoders.sasrec import (
    HeldOutInputs,
    SASRec,
    SASRecConfig,
    train_sasrec,
    training_windows,
)
from streams.cli.main import app
from streams.records.inputs import Event, Item

ITEMS = 30
TINY = SASRecConfig(
    hidden=16,
    blocks=1,
    heads=2,
    max_length=8,
    dropout=0.1,
    lr=1e-2,
    batch_size=32,
    max_epochs=60,
    patience=4,
    device="cpu",
)


def make_items(n: int = ITEMS) -> list[Item]:
    return [Item(str(i), f"Item {i}", "Drama", base_price=5.0) for i in range(n)]


def chain_events(
    users: int = 48, length: int = 10, seed: int = 0, random_next: bool = False
) -> list[Event]:
    """Each user starts on a random item; the next is 7 items on (one 30-item cycle) or random."""
    rng = random.Random(seed)
    events = []
    for u in range(users):
        item = rng.randrange(ITEMS)
        for step in range(length):
            events.append(Event(f"e{u}-{step}", "purchase", f"u{u}", str(item), 1000 * step + u))
            item = rng.randrange(ITEMS) if random_next else (item + 7) % ITEMS
    events.sort(key=lambda e: e.ts)
    return events


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny tensors: one thread avoids waiting on others on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def chain():
    return build_dataset(chain_events(), make_items())


@pytest.fixture(scope="module")
def chain_fit(chain):
    return train_sasrec(chain, TINY)


def test_windows_cut_from_the_end_with_a_start_token():
    tokens, targets = training_windows([[4, 5, 6, 7, 8]], start=99, max_length=3, stride=3)
    # Item row r is token r + 1; position i reads the items before item i.
    assert tokens.tolist() == [[6, 7, 8], [0, 99, 5]]
    assert targets.tolist() == [[6, 7, 8], [-1, 4, 5]]
    # Overlapping windows: each item is a target once, in the window that ends at it or
    # just after, with the items before it as context.
    tokens, targets = training_windows([[4, 5, 6, 7, 8]], start=99, max_length=3, stride=2)
    assert tokens.tolist() == [[6, 7, 8], [99, 5, 6], [0, 0, 99]]
    assert targets.tolist() == [[-1, 7, 8], [-1, 5, 6], [-1, -1, 4]]


def test_no_position_sees_later_items_or_padding():
    model = SASRec(ITEMS, TINY).eval()
    tokens = torch.tensor([[0, 0, 31, 5, 9, 12], [0, 31, 7, 5, 9, 12]])
    changed = tokens.clone()
    changed[:, 4:] = torch.tensor([3, 4])
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert torch.allclose(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])
    # One more padding position in front changes nothing the real positions see.
    assert torch.allclose(before[0, 2:], model(tokens[:, 1:])[0, 1:], atol=1e-6)


def test_held_out_inputs_are_the_items_before_the_case(chain):
    inputs = HeldOutInputs.of(chain)
    for split, extra in ((chain.valid, 0), (chain.test, 1)):
        for example in split:
            prefix = inputs.prefix(example)
            train = [chain.rows[e.target] for e in chain.train if e.user_id == example.user_id]
            assert len(prefix) == len(train) + extra
            assert prefix[: len(train)] == train
            assert {chain.items[r].item_id for r in prefix} == example.history


def test_learns_a_deterministic_next_item(chain, chain_fit):
    popularity = make_ranker(None, chain, EncoderConfig(device="cpu"), torch.device("cpu"))
    baseline = ndcg(rank_targets(popularity, chain, chain.test))
    learned = ndcg(rank_targets(chain_fit.scorer, chain, chain.test))
    assert learned > 0.9
    assert learned > baseline + 0.5


def test_early_stopping_stops_and_restores_the_best_epoch():
    # Random next items: validation NDCG only wanders, so it peaks early and ends lower.
    noise = build_dataset(chain_events(seed=3, random_next=True), make_items())
    config = TINY.model_copy(update={"max_epochs": 40, "patience": 3})
    fit = train_sasrec(noise, config)
    curve = [e["valid_ndcg"] for e in fit.epochs]
    assert len(curve) == fit.best_epoch + config.patience < config.max_epochs
    assert fit.best_valid_ndcg == max(curve) == curve[fit.best_epoch - 1]
    assert curve[-1] < fit.best_valid_ndcg  # so restoring the best weights shows
    assert ndcg(rank_targets(fit.scorer, noise, noise.valid)) == fit.best_valid_ndcg


def test_seeded_runs_are_identical(chain, chain_fit):
    config = TINY.model_copy(update={"max_epochs": 3})
    first, again = train_sasrec(chain, config), train_sasrec(chain, config)
    other = train_sasrec(chain, config.model_copy(update={"seed": 1}))
    assert first.epochs == again.epochs
    assert torch.equal(first.scorer.scores(chain.test), again.scorer.scores(chain.test))
    assert other.epochs != first.epochs


def test_sampled_softmax_learns_too(chain):
    config = TINY.model_copy(update={"full_softmax_max_items": 10, "negatives": 8})
    fit = train_sasrec(chain, config)
    assert ndcg(rank_targets(fit.scorer, chain, chain.test)) > 0.9


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="multiple of heads"):
        SASRecConfig(hidden=10, heads=3)


def test_evaluate_reports_the_sasrec_row(tmp_path):
    events = chain_events(users=16, length=6)
    (tmp_path / "events.jsonl").write_bytes(b"".join(e.to_json() + b"\n" for e in events))
    (tmp_path / "items.jsonl").write_bytes(b"".join(i.to_json() + b"\n" for i in make_items()))
    save_model_dir(tiny_random_model(seed=1), tmp_path / "tiny")
    args = ["evaluate", "--events", str(tmp_path / "events.jsonl"), "--items"]
    args += [str(tmp_path / "items.jsonl"), "--model", str(tmp_path / "tiny")]
    args += ["--out", str(tmp_path / "report"), "--no-zero-shot", "--parity-users", "0"]
    args += ["--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "SASRec baseline: best epoch" in result.output
    report = (tmp_path / "report" / "report.md").read_text()
    tables = [part for part in report.split("## ") if part.startswith(("Test", "Validation"))]
    assert tables and all("| sasrec |" in part for part in tables)
    models = json.loads((tmp_path / "report" / "metrics.json").read_text())["models"]
    assert models["sasrec"]["test"]["cases"] == 16
    assert "ndcg@10_lo" in models["sasrec"]["test_diff"]
    skipped = CliRunner().invoke(app, [*args, "--no-sasrec", "--out", str(tmp_path / "no")])
    assert skipped.exit_code == 0, skipped.output
    assert "| sasrec |" not in (tmp_path / "no" / "report.md").read_text()
