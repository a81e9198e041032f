"""A/B report: statistics, bounds audit, demo folders without outcomes, and the CLI."""

from __future__ import annotations

import math

import orjson
import pytest
import typer
from typer.testing import CliRunner

from pricing.ab_report import wilson, write_ab_report
from streams.cli.pricing import register


def _update(user, item, arm, price, ts, floor=8.0, ceiling=12.0):
    return {
        "user_id": user,
        "item_id": item,
        "price": price,
        "base_price": 10.0,
        "floor": floor,
        "ceiling": ceiling,
        "arm": arm,
        "policy_version": "v",
        "reason": "r",
        "personalized": arm != "control",
        "ts": ts,
    }


def _write(path, records):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _folder(tmp_path, *, outcomes=True, rate=None):
    """200 users per arm, 10 offers each; control converts 5%, treat 10% at price 10."""
    rate = rate or {"control": 0.05, "treat": 0.10}
    updates, sales = [], []
    for arm, p in rate.items():
        for u in range(200):
            user = f"{arm}-{u}"
            for k in range(10):
                ts = 1_000 + (u * 10 + k) * 60_000
                updates.append(_update(user, f"i{k}", arm, 10.0, ts))
                # Deterministic pattern with exactly the rate p over the arm.
                if (u * 10 + k) % round(1 / p) == 0:
                    sales.append(
                        {
                            "user_id": user,
                            "item_id": f"i{k}",
                            "arm": arm,
                            "price": 10.0,
                            "revenue": 10.0,
                            "ts": ts,
                        }
                    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    _write(tmp_path / "price_updates.jsonl", updates)
    if outcomes:
        _write(tmp_path / "outcomes.jsonl", sales)
    return tmp_path


def test_wilson_matches_known_values():
    interval = wilson(5, 10)
    assert (interval.low, interval.value, interval.high) == pytest.approx(
        (0.2366, 0.5, 0.7634), abs=1e-4
    )
    assert wilson(0, 10).low == 0.0 and wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    assert math.isnan(wilson(0, 0).value)


def test_report_estimates_rates_and_uplift_with_intervals(tmp_path):
    report = write_ab_report(_folder(tmp_path / "in"), tmp_path / "out", n_boot=500)
    control, treat = report.arms["control"], report.arms["treat"]
    assert (control.offers, control.users, control.conversions) == (2000, 200, 100)
    assert treat.conversion.value == pytest.approx(0.10)
    assert control.conversion.low < 0.05 < control.conversion.high
    assert treat.revenue_per_offer.value == pytest.approx(1.0)
    assert treat.revenue_per_user.value == pytest.approx(10.0)
    # Doubling conversion at the same price doubles revenue per offer: +100%.
    uplift = treat.uplift_revenue_per_offer
    assert uplift.value == pytest.approx(1.0)
    assert 0.0 < uplift.low < 1.0 < uplift.high
    assert control.uplift_conversion is None
    text = report.report_path.read_text()
    assert "| treat | 2,000 | 200 |" in text
    assert "+100.0% [" in text
    assert report.out_of_bounds == 0 and "**0** (OK)" in text
    assert {p.name for p in report.plots} == {"arms.png", "over_time.png"}


def test_demo_folder_without_outcomes_reports_offers_only(tmp_path):
    folder = _folder(tmp_path / "demo", outcomes=False)
    (folder / "recommendations.jsonl").write_text("{}\n")
    (folder / "dlq.jsonl").write_text("")
    report = write_ab_report(folder, tmp_path / "out")
    assert not report.has_outcomes
    assert report.arms["treat"].offers == 2000 and report.arms["treat"].conversion is None
    text = report.report_path.read_text()
    assert "conversion and revenue are unknown" in text
    assert "| control | 2,000 | 200 | 1.000 |" in text
    assert all(p.is_file() for p in report.plots)


def test_out_of_bound_offers_are_counted_from_the_records(tmp_path):
    folder = _folder(tmp_path / "in", outcomes=False)
    bad = [
        _update("x", "i", "treat", 12.5, 5),  # above its ceiling
        _update("x", "j", "treat", 7.99, 6),  # below its floor
        {k: v for k, v in _update("x", "k", "treat", 10.0, 7).items() if k != "floor"},
        _update("x", "l", "treat", math.inf, 8),
    ]
    with (folder / "price_updates.jsonl").open("ab") as handle:
        for record in bad:
            handle.write(orjson.dumps(record) + b"\n")
    report = write_ab_report(folder, tmp_path / "out")
    # orjson writes inf as null, which is not a price either.
    assert report.out_of_bounds == 4
    assert "VIOLATION" in report.report_path.read_text()


def test_shares_history_is_reported(tmp_path):
    folder = _folder(tmp_path / "in")
    _write(
        folder / "shares.jsonl",
        [
            {"offers": 0, "shares": {"control": 0.2, "treat": 0.8}},
            {"offers": 2000, "shares": {"control": 0.2, "treat": 0.8}},
        ],
    )
    report = write_ab_report(folder, tmp_path / "out", n_boot=100)
    assert "shares.png" in {p.name for p in report.plots}
    assert "| treat | 0.800 | 0.800 |" in report.report_path.read_text()


def test_missing_price_updates_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_ab_report(tmp_path, tmp_path / "out")


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)
    return app


def test_ab_report_command(cli, tmp_path):
    folder = _folder(tmp_path / "in")
    result = CliRunner().invoke(
        cli, ["ab-report", "--input", str(folder), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "## Uplift vs control" in result.output
    assert (tmp_path / "o" / "report.md").is_file()


@pytest.mark.parametrize("args", [[], ["--input", "x", "--from-kafka"], ["--input", "nowhere"]])
def test_ab_report_command_rejects_bad_inputs(cli, tmp_path, args):
    result = CliRunner().invoke(cli, ["ab-report", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2


def test_ab_report_command_fails_on_out_of_bound_offers(cli, tmp_path):
    folder = _folder(tmp_path / "in", outcomes=False)
    with (folder / "price_updates.jsonl").open("ab") as handle:
        handle.write(orjson.dumps(_update("x", "i", "treat", 99.0, 5)) + b"\n")
    result = CliRunner().invoke(
        cli, ["ab-report", "--input", str(folder), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1


def test_ab_report_from_kafka_reads_updates_and_outcomes(cli, tmp_path, monkeypatch):
    folder = _folder(tmp_path / "in")
    topics = {
        "price-updates": _lines(folder / "price_updates.jsonl"),
        "price-outcomes": _lines(folder / "outcomes.jsonl"),
    }

    def fake_read_topic(kafka, topic, *, from_beginning, max_records, idle_timeout_s):
        assert from_beginning and max_records is None
        if topic not in topics:  # no experiment-shares topic on this broker
            raise ValueError(f"topic {topic!r} does not exist")
        yield from topics[topic]

    monkeypatch.setattr("streams.offline.kafka_io.read_topic", fake_read_topic)
    monkeypatch.setattr("streams.connection.check_connection", lambda kafka: None)
    result = CliRunner().invoke(cli, ["ab-report", "--from-kafka", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "read 4000 records from price-updates" in result.output
    assert "no experiment-shares topic" in result.output
    assert "| treat | 2,000 | 200 | 1.000 | 200 | 10.00% [" in result.output


def _lines(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
