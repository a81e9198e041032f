import json
import math

import pytest
import torch

from encoders.behaviour import StateConfig, apply_event, render_summary
from encoders.config import EncoderConfig
from encoders.dataset import build_dataset, load_dataset
from encoders.evaluation import (
    make_ranker,
    parity_check,
    rank_targets,
    run_evaluation,
)
from encoders.evaluation_report import write_evaluation_report
from encoders.metrics import (
    bootstrap_interval,
    hit_rate,
    mask_rows,
    mrr,
    ndcg,
    summarize,
    target_ranks,
)
from encoders.model import tiny_random_model
from streams.records.inputs import Event, Item
from streams.records.user_state import UserState

CPU = EncoderConfig(device="cpu", user_max_length=32, item_max_length=16)


def make_items(n: int = 12) -> list[Item]:
    genres = ["Drama", "Comedy", "Action"]
    return [
        Item(str(i), f"Movie {i} title", genres[i % 3], base_price=5.0 + i) for i in range(1, n + 1)
    ]


def make_events() -> list[Event]:
    # Three users, interleaved in time; u1's 2nd and 3rd events share a timestamp.
    plan = {
        "u1": ["1", "2", "3", "4", "5"],
        "u2": ["2", "3", "6", "7"],
        "u3": ["8", "1", "9", "10", "11", "12"],
    }
    events = []
    n = 0
    for step in range(6):
        for user, seq in plan.items():
            if step < len(seq):
                n += 1
                ts = 1000 * step if user == "u1" and step in (1, 2) else 1000 * step + n
                if user == "u1" and step == 2:
                    ts = 1000  # tie with u1's previous event
                events.append(Event(f"e{n}", "purchase", user, seq[step], ts, rating=4.0))
    events.sort(key=lambda e: e.ts)
    return events


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(make_events(), make_items())


@pytest.fixture(scope="module")
def model():
    return tiny_random_model(seed=1)


def test_target_ranks_hand_computed():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.2, 0.2, 0.9]])
    # Row 0: target 2 (0.5) has only 0.9 ahead -> rank 2.
    # Row 1: target 1 ties with row 0 (lower row wins the tie) and trails 0.9 -> rank 3.
    assert target_ranks(scores, torch.tensor([2, 1])).tolist() == [2, 3]


def test_excluded_items_do_not_count():
    scores = torch.tensor([[0.9, 0.8, 0.1]])
    mask_rows(scores, [[0, 1]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]


def test_metric_values_hand_computed():
    ranks = [1, 3, 11]
    assert hit_rate(ranks, 10) == pytest.approx(2 / 3)
    assert ndcg(ranks, 10) == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)
    assert summarize([], 10) == {"hr@10": 0.0, "ndcg@10": 0.0, "mrr": 0.0, "cases": 0.0}


def test_split_is_last_test_second_last_valid(dataset):
    test = {e.user_id: e.target for e in dataset.test}
    valid = {e.user_id: e.target for e in dataset.valid}
    assert test == {"u1": "5", "u2": "7", "u3": "12"}
    assert valid == {"u1": "4", "u2": "6", "u3": "11"}
    train_u1 = [e.target for e in dataset.train if e.user_id == "u1"]
    # The tie at ts=1000 keeps file order: 2 before 3.
    assert train_u1 == ["1", "2", "3"]
    assert len(dataset.train) == 5 - 2 + 4 - 2 + 6 - 2


def test_ties_follow_file_order(tmp_path):
    items = make_items()
    lines = [
        Event("a", "purchase", "u", "1", 5, rating=5.0),
        Event("b", "purchase", "u", "2", 5, rating=5.0),
        Event("c", "purchase", "u", "3", 5, rating=5.0),
    ]
    (tmp_path / "events.jsonl").write_text(
        "\n".join(json.dumps(e.to_dict()) for e in reversed(lines)) + "\n"
    )
    (tmp_path / "items.jsonl").write_text(
        "\n".join(json.dumps(i.to_dict()) for i in items) + "\nnot json\n"
    )
    data = load_dataset(tmp_path / "events.jsonl", tmp_path / "items.jsonl")
    assert [e.target for e in data.test] == ["1"]  # last line of the file
    assert [e.target for e in data.valid] == ["2"]
    assert data.skipped_items == 1


def test_no_future_leaks_into_summaries(dataset):
    items = {i.item_id: i for i in make_items()}
    config = StateConfig()
    state: dict[str, UserState] = {}
    expected = {}
    for event in make_events():
        before = state.get(event.user_id, UserState())
        title_of = {k: v.title for k, v in items.items()}.get
        expected[(event.user_id, event.item_id)] = render_summary(before, title_of, config)
        item = items[event.item_id]
        state[event.user_id] = apply_event(before, event, item.category, item.base_price, config)
    for example in (*dataset.train, *dataset.valid, *dataset.test):
        assert example.summary == expected[(example.user_id, example.target)]
        assert items[example.target].title not in example.summary
    for example in (*dataset.valid, *dataset.test):
        assert example.target not in example.history
        assert example.state is not None
        assert example.history == frozenset(e.item_id for e in example.state.recent)


def test_held_out_history_is_everything_before(dataset):
    u3_test = next(e for e in dataset.test if e.user_id == "u3")
    assert u3_test.history == {"8", "1", "9", "10", "11"}


def test_popularity_ranks_most_counted_first(dataset):
    ranker = make_ranker(None, dataset, CPU, torch.device("cpu"))
    counts = ranker.popularity.tolist()
    assert counts[dataset.rows["2"]] == 2  # u1 and u2 both trained on item 2
    ranks = rank_targets(ranker, dataset, dataset.test)
    assert all(1 <= r <= len(dataset.items) for r in ranks)


def test_run_evaluation_and_report(dataset, model, tmp_path):
    results = run_evaluation(dataset, {"tiny": model}, model, CPU)
    assert set(results) == {"popularity", "zero-shot", "tiny"}
    for splits in results.values():
        assert splits["test"]["cases"] == 3
        assert 0.0 <= splits["test"]["ndcg@10"] <= splits["test"]["hr@10"] <= 1.0
    parity = parity_check(model, dataset, CPU, users=3)
    assert parity.ok, parity
    history = {
        "epochs": [{"epoch": 1, "loss": 2.0, "valid_ndcg": 0.1}],
        "best_epoch": 1,
        "seconds": 1.0,
        "device": "cpu",
        "threads": 1,
        "train_examples": 11,
    }
    for name, splits in results.items():
        ci = splits["test_ci95"]
        for metric in ("ndcg@10", "hr@10", "mrr"):
            assert ci[f"{metric}_lo"] <= splits["test"][metric] <= ci[f"{metric}_hi"], name
    # Every row but the reference carries its difference from the reference.
    assert "test_diff" not in results["tiny"]
    diff = results["popularity"]["test_diff"]
    gap = results["popularity"]["test"]["ndcg@10"] - results["tiny"]["test"]["ndcg@10"]
    assert diff["ndcg@10"] == pytest.approx(gap)
    assert diff["ndcg@10_lo"] <= gap <= diff["ndcg@10_hi"]
    write_evaluation_report(
        tmp_path,
        results,
        {**vars(parity), "ok": parity.ok},
        history,
        {"items": 12},
        reference="tiny",
    )
    for name in ("metrics.json", "report.md", "metrics.png", "training.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "| popularity |" in report
    assert "## Test, paired differences from tiny" in report
    assert json.loads((tmp_path / "metrics.json").read_text())["reference"] == "tiny"


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_users():
    rng = torch.Generator().manual_seed(0)
    few = torch.randint(1, 40, (200,), generator=rng).tolist()
    many = torch.randint(1, 40, (3200,), generator=rng).tolist()
    width = {}
    for name, ranks in (("few", few), ("many", many)):
        interval = bootstrap_interval(ranks)
        means = summarize(ranks)
        for metric, (lo, hi) in interval.items():
            assert lo < means[metric] < hi, (name, metric)
        width[name] = interval["ndcg@10"][1] - interval["ndcg@10"][0]
        assert bootstrap_interval(ranks) == interval  # seeded
    # 16x the users: about a quarter of the width (1/sqrt(n)).
    assert 0.15 < width["many"] / width["few"] < 0.4


def test_paired_interval_cancels_shared_difficulty():
    rng = torch.Generator().manual_seed(1)
    base = torch.randint(1, 30, (500,), generator=rng).tolist()
    assert all(v == (0.0, 0.0) for v in bootstrap_interval(base, baseline=base).values())
    better = [max(1, r - 1) if i % 2 else r for i, r in enumerate(base)]  # half a bit better
    lo, hi = bootstrap_interval(better, baseline=base)["ndcg@10"]
    assert lo > 0
    apart = [bootstrap_interval(r)["ndcg@10"] for r in (better, base)]
    # Unpaired, the two intervals overlap; paired, the gain is clear.
    assert apart[0][0] < apart[1][1]
    assert hi - lo < (apart[0][1] - apart[0][0]) / 2
    with pytest.raises(ValueError):
        bootstrap_interval(better, baseline=base[:-1])
