from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli.main import app
from streams.cli.options import load_settings
from streams.topics import AppTopics

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "missing.jsonl"], "is not a file"),
        (["replay", "x.jsonl", "--speed", "0"], "--speed must be positive"),
        (["replay", "x.jsonl", "--from", "10", "--until", "5"], "--until must be after --from"),
        (["produce", "{}", "--file", "x.jsonl"], "not both"),
        (["produce", "--topic", "nope", "{}"], "--topic must be 'events' or 'items'"),
        (["tail", "recommendations", "--max", "0"], "--max must be at least 1"),
        (["demo", "--events", "0"], "--events must be at least 1"),
    ],
)
def test_argument_errors_are_clear(args: list[str], message: str):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_unknown_command_fails():
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2


def test_flags_override_settings_and_bounds_are_checked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RECPRICE__SCORER__MAX_BATCH", "7")
    settings = load_settings("127.0.0.1:1234", "p-")
    assert settings.kafka.bootstrap == "127.0.0.1:1234"
    assert AppTopics.of(settings).events.name == "p-events"
    assert settings.scorer.max_batch == 7
    monkeypatch.setenv("RECPRICE__SCORER__MAX_BATCH", "0")
    with pytest.raises(ValueError, match="max_batch"):
        load_settings()
    monkeypatch.setenv("RECPRICE__SCORER__MAX_BATCH", "8")
    monkeypatch.setenv("RECPRICE__SCORER__NO_SUCH_FIELD", "1")
    with pytest.raises(ValueError, match="no_such_field"):
        load_settings()


def test_data_movielens_writes_contract_files(tmp_path: Path):
    result = runner.invoke(app, ["data", "movielens", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    events = (tmp_path / "events.jsonl").read_text().splitlines()
    items = (tmp_path / "items.jsonl").read_text().splitlines()
    assert len(events) == 100_000 and len(items) == 1682
