import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.batching import BatchingResult
from bench.common import (
    REQUIRED_KEYS,
    markdown_table,
    percentile,
    ratio,
    validate_results,
    write_results,
)
from bench.e2e import SaturationRound, batch_rate, median_saturation
from bench.ingest import IngestResult, median_round
from bench.ranker import SizeResult
from bench.run import targets
from bench.scoring_steps import ScoringSteps


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50),
    q=st.floats(0, 100),
)
def test_percentile_matches_numpy(values: list[float], q: float):
    assert math.isclose(
        percentile(values, q), float(np.percentile(values, q)), rel_tol=1e-9, abs_tol=1e-6
    )


def test_percentile_edges():
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ratio_of_nothing_is_nan():
    assert ratio(3, 2) == 1.5
    assert math.isnan(ratio(1, 0))


def good_results() -> dict[str, object]:
    out: dict[str, object] = {key: 1.5 for key in REQUIRED_KEYS}
    out["device"] = "cpu: test"
    return out


def test_results_schema_accepts_complete_results(tmp_path):
    results = good_results()
    assert validate_results(results) == []
    write_results(tmp_path / "r.json", results)
    assert (tmp_path / "r.json").read_bytes().startswith(b"{")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("p99_latency_ms", None, "missing p99_latency_ms"),
        ("e2e_vs_scorer", float("nan"), "e2e_vs_scorer must be finite"),
        ("ingest_events_per_s", 0.0, "ingest_events_per_s must be finite and positive"),
        ("batched_vs_single", True, "batched_vs_single must be a number"),
        ("device", "", "device must be a non-empty string"),
    ],
)
def test_results_schema_names_each_problem(tmp_path, key, value, problem):
    results = good_results()
    if value is None:
        del results[key]
    else:
        results[key] = value
    assert any(p.startswith(problem) for p in validate_results(results))
    with pytest.raises(ValueError, match=key):
        write_results(tmp_path / "r.json", results)
    assert not (tmp_path / "r.json").exists()


def test_batch_rate_skips_the_first_batch():
    # Batches at t=0 (3 users), 1000 ms (2 users), 2000 ms (2 users): 4 users in 2 s.
    assert batch_rate([0, 0, 0, 1000, 1000, 2000, 2000]) == 2.0
    assert math.isnan(batch_rate([5, 5, 5]))


def test_targets_say_which_are_met():
    results = {
        "device": "cpu: x",
        "scorer_vs_encoder": 0.9,
        "batched_vs_single": 4.0,
        "ingest_events_per_s": 12_000.0,
        "e2e_vs_scorer": 0.5,
        "p99_latency_ms": 90.0,
        "p99_target_ms": 100.0,
        "state_bytes_per_user": 3000.0,
        "scorer_users_per_s": 10.0,
    }
    met = {name: ok for name, _, _, ok in targets(results)}
    assert met == {
        "scorer vs raw encoder (best batch)": True,
        "micro-batched vs per-user": False,
        "ingest events/s, one worker": True,
        "end to end vs scorer-only": False,
        "p99 latency at half load, ms": True,
        "state bytes per user (on disk)": False,
    }
    gpu = dict(results, device="cuda: H100", batched_vs_single=10.0, scorer_users_per_s=60_000.0)
    met_gpu = {name: ok for name, _, _, ok in targets(gpu)}
    assert met_gpu["micro-batched vs per-user"] is False
    assert met_gpu["scorer users/s on GPU"] is True


def test_markdown_table_formats_numbers():
    table = markdown_table(["a", "b"], [[1234.5, 0.123456], [float("nan"), "x"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1,234 | 0.123 |", "| n/a | x |"]


def ingest_round(events_per_s: float, noop_per_s: float) -> IngestResult:
    return IngestResult(1000, 1000, 1000 / events_per_s, 0, 1000, 1000 / noop_per_s)


def test_median_round_is_one_real_round_with_its_own_noop_figure():
    rounds = [ingest_round(9000, 15000), ingest_round(7000, 11000), ingest_round(8000, 16000)]
    median = median_round(rounds)
    assert median.events_per_s == pytest.approx(8000)
    assert median.noop_events_per_s == pytest.approx(16000)
    assert median_round(rounds[:2]).events_per_s == pytest.approx(7000)  # lower of two
    assert median_round(rounds[:1]) is rounds[0]
    with pytest.raises(ValueError, match="no ingest rounds"):
        median_round([])


def e2e_round(events_per_s: float, reference_per_s: float) -> SaturationRound:
    return SaturationRound(events_per_s, 10.0, SizeResult(64, 100.0, reference_per_s, 400.0, 3))


def test_median_saturation_is_the_round_with_the_median_ratio_beside_its_own_reference():
    # Ratios 0.9, 0.5, 0.7: the median is the third round, though its rate is the lowest.
    rounds = [e2e_round(90, 100), e2e_round(100, 200), e2e_round(70, 100)]
    median = median_saturation(rounds)
    assert median is rounds[2] and median.vs_scorer == pytest.approx(0.7)
    assert median_saturation(rounds[:2]) is rounds[1]  # lower of two
    with pytest.raises(ValueError, match="no end-to-end rounds"):
        median_saturation([])


def test_scoring_steps_report_each_sides_best_batch_and_their_ratio():
    per_size = [SizeResult(1, 40.0, 36.0, 25.0, 10), SizeResult(8, 60.0, 50.0, 130.0, 5)]
    per_size.append(SizeResult(32, 64.0, 48.0, 500.0, 3))
    steps = ScoringSteps(per_size, BatchingResult(64, 30.0, 45.0))

    results = steps.to_results()

    assert (results["encoder_best_batch"], results["scorer_best_batch"]) == (32, 8)
    assert results["scorer_vs_encoder"] == pytest.approx(50.0 / 64.0)
    assert results["batched_vs_single"] == pytest.approx(1.5)
    assert [r["batch"] for r in results["per_batch_size"]] == [1, 8, 32]
    assert results["batching"] == {
        "batch": 64,
        "single_users_per_s": 30.0,
        "batched_users_per_s": 45.0,
    }
