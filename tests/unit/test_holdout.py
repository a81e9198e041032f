"""The held-out split: items kept out of training entirely, measured as test targets only."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from encoders.config import EncoderConfig
from encoders.dataset import (
    build_dataset,
    evaluation_view,
    held_out_items,
    training_view,
)
from encoders.evaluation import case_ranks, make_ranker, rank_targets, run_evaluation
from encoders.evaluation_report import write_evaluation_report
from encoders.hold_out import (
    HOLD_OUT_FILE,
    HoldOut,
    HoldOutMismatch,
    check_hold_out,
    read_hold_out,
    training_notes,
    write_hold_out,
)
from encoders.model import load_model_dir, save_model_dir, tiny_random_model
from encoders.train_config import TrainConfig
from encoders.training import train
from streams.cli.main import app
from streams.records.inputs import Event, Item

CPU = EncoderConfig(device="cpu", user_max_length=24, item_max_length=12)
runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
SECTION = "## Test, held-out items (never in training)"


def make_log(users: int = 10, length: int = 7, n_items: int = 40) -> tuple[list[Event], list[Item]]:
    # Items 30-39 are never interacted with: they can never be held out.
    items = [Item(str(i), f"Film number {i}", "Drama", base_price=4.0 + i) for i in range(n_items)]
    events = []
    for u in range(users):
        for step in range(length):
            item = str((u * 5 + step * 3) % 30)
            events.append(
                Event(f"{u}-{step}", "purchase", f"u{u}", item, 1000 * step + u, rating=4.0)
            )
    events.sort(key=lambda e: e.ts)
    return events, items


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(*make_log())


def targets(examples) -> set[str]:
    return {e.target for e in examples}


def test_the_draw_is_seeded_and_takes_its_share_of_the_interacted_items(dataset):
    interacted = targets(dataset.train) | targets(dataset.valid) | targets(dataset.test)
    picked = held_out_items(dataset, 0.2, seed=3)
    assert picked == held_out_items(dataset, 0.2, seed=3)
    assert picked != held_out_items(dataset, 0.2, seed=4)
    assert picked <= interacted
    assert len(picked) == round(0.2 * len(interacted))
    # A larger share of the same seed holds out the same items and more.
    assert picked < held_out_items(dataset, 0.5, seed=3)
    assert held_out_items(dataset, 0.0, seed=3) == frozenset()
    for share in (1.0, -0.1):
        with pytest.raises(ValueError):
            held_out_items(dataset, share, seed=3)


def test_the_training_view_has_no_held_out_item_or_target(dataset):
    held_out = held_out_items(dataset, 0.3, seed=0)
    view = training_view(dataset, held_out)
    assert not {item.item_id for item in view.items} & held_out
    assert len(view.items) == len(dataset.items) - len(held_out)
    assert not held_out & set(view.rows)
    splits = ((dataset.train, view.train), (dataset.valid, view.valid), (dataset.test, view.test))
    for full, kept in splits:
        assert not targets(kept) & held_out
        # Only the held-out items' cases go.
        assert list(kept) == [e for e in full if e.target not in held_out]
    assert len(view.test) < len(dataset.test)


def test_the_evaluation_view_keeps_every_item_and_case_and_counts_popularity_without_them(
    dataset,
):
    held_out = held_out_items(dataset, 0.3, seed=0)
    view = evaluation_view(dataset, held_out)
    assert view.items == dataset.items and view.valid == dataset.valid
    assert view.test == dataset.test
    assert view.train == training_view(dataset, held_out).train
    counts = make_ranker(None, view, CPU, torch.device("cpu")).popularity
    assert all(counts[view.rows[i]] == 0 for i in held_out)
    assert counts.sum() == len(view.train)


def test_held_out_cases_are_the_test_cases_on_held_out_targets(dataset):
    held_out = held_out_items(dataset, 0.3, seed=0)
    view = evaluation_view(dataset, held_out)
    evaluator = make_ranker(tiny_random_model(seed=2), view, CPU, torch.device("cpu"))
    ranks = case_ranks(evaluator, view, held_out)
    cases = [e for e in view.test if e.target in held_out]
    assert cases
    assert ranks["test_held_out"] == rank_targets(evaluator, view, cases)
    assert "test_held_out" not in case_ranks(evaluator, view)


def test_a_model_trained_on_the_training_view_has_no_row_for_held_out_items(dataset):
    held_out = held_out_items(dataset, 0.3, seed=0)
    config = TrainConfig(
        epochs=1,
        batch_size=8,
        user_max_length=24,
        item_max_length=12,
        device="cpu",
        progress=False,
        history=4,
    )
    model = train(tiny_random_model(), training_view(dataset, held_out), config).model
    item_ids = tuple(item.item_id for item in dataset.items)
    rows = model.head.rows_for(item_ids)
    assert rows is not None
    unknown = {i for i, r in zip(item_ids, rows.tolist(), strict=True) if r == -1}
    assert unknown == held_out


def test_a_model_is_refused_on_another_split_than_its_own():
    split = HoldOut(0.1, 0, frozenset({"a", "b"}))
    check_hold_out("m", split, split)
    check_hold_out("m", None, split)  # trained on every item: a reference
    check_hold_out("m", None, None)
    for asked in (None, HoldOut(0.1, 1, split.items), HoldOut(0.1, 0, frozenset({"a"}))):
        with pytest.raises(HoldOutMismatch, match="model m"):
            check_hold_out("m", split, asked)


def test_the_split_is_recorded_read_back_and_removed(tmp_path):
    split = HoldOut(0.25, 7, frozenset({"3", "11"}))
    write_hold_out(tmp_path, split)
    assert read_hold_out(tmp_path) == split
    write_hold_out(tmp_path, None)
    assert not (tmp_path / HOLD_OUT_FILE).exists()
    assert read_hold_out(tmp_path) is None


def test_training_notes_say_which_rows_saw_the_held_out_items():
    split = HoldOut(0.1, 0, frozenset({"a"}))
    rows = ["popularity", "zero-shot", "cold", "cold (ids off)", "all", "all (ids off)", "x"]
    notes = training_notes(rows, {"cold": split, "all": None})
    assert notes["cold"] == notes["cold (ids off)"] == "no"
    assert notes["all"].startswith("yes") and notes["all (ids off)"].startswith("yes")
    assert notes["popularity"].startswith("no") and notes["zero-shot"].startswith("no")
    assert "x" not in notes


def test_the_report_has_the_held_out_section_only_with_a_split(dataset, tmp_path):
    held_out = held_out_items(dataset, 0.3, seed=0)
    view = evaluation_view(dataset, held_out)
    model = tiny_random_model(seed=1)
    results = run_evaluation(view, {"tiny": model}, None, CPU, held_out)
    cases = sum(e.target in held_out for e in view.test)
    for splits in results.values():
        assert splits["test_held_out"]["cases"] == cases
        ci = splits["test_held_out_ci95"]
        assert ci["ndcg@10_lo"] <= splits["test_held_out"]["ndcg@10"] <= ci["ndcg@10_hi"]
    notes = training_notes(results, {"tiny": HoldOut(0.3, 0, held_out)})
    info = {"share": 0.3, "seed": 0, "items": len(held_out), "notes": notes}
    write_evaluation_report(tmp_path / "with", results, None, None, {}, "tiny", info)
    report = (tmp_path / "with" / "report.md").read_text()
    assert SECTION in report
    assert f"| tiny | {results['tiny']['test_held_out']['ndcg@10']:.4f} |" in report
    plain = run_evaluation(dataset, {"tiny": model}, None, CPU)
    write_evaluation_report(tmp_path / "without", plain, None, None, {}, "tiny")
    assert "held-out" not in (tmp_path / "without" / "report.md").read_text()


def write_log(path: Path) -> list[str]:
    events, items = make_log()
    (path / "events.jsonl").write_bytes(b"".join(e.to_json() + b"\n" for e in events))
    (path / "items.jsonl").write_bytes(b"".join(i.to_json() + b"\n" for i in items))
    return ["--events", str(path / "events.jsonl"), "--items", str(path / "items.jsonl")]


def test_train_and_evaluate_with_a_hold_out_through_the_command_line(tmp_path):
    files = write_log(tmp_path)
    base = tmp_path / "base"  # a model directory trained on every item
    save_model_dir(tiny_random_model(seed=3, history=4), base)
    split = ["--hold-out-items", "0.3", "--hold-out-seed", "5"]
    trained = runner.invoke(
        app,
        ["train", *files, "--out", str(tmp_path / "cold"), "--base", str(base), *split]
        + ["--epochs", "1", "--batch-size", "8", "--user-max-length", "24"]
        + ["--item-max-length", "12", "--device", "cpu", "--no-progress"]
        + ["--history", "4"],
    )
    assert trained.exit_code == 0, trained.output
    record = json.loads((tmp_path / "cold" / HOLD_OUT_FILE).read_text())
    dataset = build_dataset(*make_log())
    held_out = held_out_items(dataset, 0.3, 5)
    assert record == {"share": 0.3, "seed": 5, "item_ids": sorted(held_out)}
    head = load_model_dir(tmp_path / "cold").head
    assert not set(head.item_ids) & held_out
    assert set(head.item_ids) == {item.item_id for item in dataset.items} - held_out

    def evaluate(*args: str):
        out = tmp_path / "report"
        return runner.invoke(
            app,
            ["evaluate", *files, "--model", str(tmp_path / "cold"), "--model", str(base)]
            + ["--out", str(out), "--no-zero-shot", "--parity-users", "4"]
            + list(args),
        )

    result = evaluate(*split)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report" / "report.md").read_text()
    section = report.split(SECTION)[1].split("\n## ")[0]
    assert "| cold |" in section and "| no |" in section
    assert "| base |" in section and "yes (trained on every item)" in section
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    cases = sum(e.target in held_out for e in dataset.test)
    assert cases and metrics["models"]["cold"]["test_held_out"]["cases"] == cases
    assert metrics["models"]["cold"]["test"]["cases"] == len(dataset.test)
    for other in (["--hold-out-items", "0.3", "--hold-out-seed", "6"], []):
        refused = evaluate(*other)
        assert refused.exit_code == 2, refused.output
        assert "model cold was trained" in refused.output
