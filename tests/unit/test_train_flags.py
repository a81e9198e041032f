"""`recprice train`: one flag per TrainConfig field, old spellings as hidden aliases."""

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from encoders.train_config import TrainConfig
from streams.cli import model as model_commands
from streams.cli.config_flags import flag_name
from streams.cli.main import app
from streams.offline import training_run
from streams.offline.training_run import TrainJob

# Wide enough that the help never shortens a flag.
runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})


class Stop(Exception):
    """Raised by the stand-in trainer with the config the command built."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run `recprice train ARGS` on empty files, with a trainer that stops at once."""

    def fit(job: TrainJob, processes: int = 1) -> None:
        raise Stop(job.config)

    monkeypatch.setattr(training_run, "train_model", fit)
    monkeypatch.setattr(model_commands, "_dataset", lambda events, items: None)
    (tmp_path / "events.jsonl").write_text("")
    (tmp_path / "items.jsonl").write_text("")
    files = ["--events", str(tmp_path / "events.jsonl"), "--items", str(tmp_path / "items.jsonl")]

    def run(*args: str):
        return runner.invoke(app, ["train", *files, "--out", str(tmp_path / "m"), *args])

    return run


@pytest.fixture
def train_config(invoke):
    """The config that `recprice train ARGS` hands to the trainer."""

    def run(*args: str) -> TrainConfig:
        result = invoke(*args)
        assert isinstance(result.exception, Stop), result.output
        return result.exception.config

    return run


def train_command():
    return typer.main.get_command(app).commands["train"]


def test_every_config_field_has_a_visible_flag_of_the_same_name():
    options = {p.name: p for p in train_command().params}
    for field, info in TrainConfig.model_fields.items():
        assert field in options, field
        assert flag_name(field) in options[field].opts
        assert not options[field].hidden
        assert options[field].default == info.default
    # And no visible flag sets a field under another name.
    visible = {p.name for p in train_command().params if not p.hidden}
    assert visible - set(TrainConfig.model_fields) == {
        "events",
        "items",
        "out",
        "base",
        "hold_out_items",
        "hold_out_seed",
        "nproc",
        "cache_dir",
    }


def test_help_lists_every_flag_and_no_old_spelling():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for field in TrainConfig.model_fields:
        assert flag_name(field) in result.output, field
    for old in model_commands.OLD_SPELLINGS:
        assert old not in result.output.split()
    assert "--no-item-ids" in result.output


def test_defaults_are_the_configs(train_config):
    assert train_config() == TrainConfig()


def test_each_flag_sets_its_field(train_config):
    config = train_config(
        "--item-train-layers", "2", "--warmup", "0.1", "--loss", "sampled", "--no-progress"
    )
    assert config.item_train_layers == 2
    assert config.warmup == 0.1
    assert config.loss == "sampled"
    assert config.progress is False
    assert config.model_dump(exclude={"item_train_layers", "warmup", "loss", "progress"}) == (
        TrainConfig().model_dump(exclude={"item_train_layers", "warmup", "loss", "progress"})
    )


@pytest.mark.parametrize(
    ("old", "field", "value"),
    [
        ("--item-layers", "item_train_layers", 3),
        ("--max-length", "user_max_length", 40),
        ("--per-user", "max_train_per_user", 7),
    ],
)
def test_an_old_spelling_sets_the_same_field(train_config, old: str, field: str, value: int):
    assert model_commands.OLD_SPELLINGS[old] == field
    assert getattr(train_config(old, str(value)), field) == value
    assert train_config(old, str(value)) == train_config(flag_name(field), str(value))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--warmup", "1.5"], "--warmup"),
        (["--loss", "nope"], "--loss"),
        (["--batch-size", "many"], "--batch-size"),
        (["--per-user", "-1"], "--per-user"),
        (["--item-layers", "1", "--item-train-layers", "2"], "old spelling"),
    ],
)
def test_a_wrong_value_is_refused_before_training(invoke, args: list[str], message: str):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
