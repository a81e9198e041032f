import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.structs import TopicPartition
from faust.types import TP
from mode.utils.logging import setup_logging

from streams.settings import Settings
from streams.worker.log_format import (
    JsonFormatter,
    json_logging_config,
    partition_extra,
    route_to_root,
    worker_id,
)

WORKER = worker_id("it-recprice", "host-1", 4242)
FIELDS = {"time", "level", "logger", "message", "worker"}


def record(
    msg: str = "hello %s",
    args: tuple[object, ...] = ("there",),
    *,
    extra: dict[str, object] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    """A record made the way ``Logger.warning`` makes it."""
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.getLogger("streams.worker.test").makeRecord(
        "streams.worker.test", logging.WARNING, __file__, 1, msg, args, exc_info, extra=extra
    )


def line(rec: logging.LogRecord) -> dict[str, object]:
    out = JsonFormatter(WORKER).format(rec)
    assert "\n" not in out
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


def test_a_plain_record_has_the_documented_fields_and_nothing_else():
    rec = record()
    got = line(rec)
    assert set(got) == FIELDS
    assert got["message"] == "hello there"
    assert got["level"] == "WARNING"
    assert got["logger"] == "streams.worker.test"
    assert got["worker"] == "it-recprice@host-1:4242"
    assert str(got["time"]).endswith("Z")
    when = datetime.fromisoformat(str(got["time"]).replace("Z", "+00:00"))
    assert when.tzinfo == UTC
    assert abs(when.timestamp() - rec.created) < 0.001


def test_an_exception_is_written_as_its_traceback_text_on_the_same_line():
    got = line(record("scoring failed", (), exc=True))
    assert set(got) == FIELDS | {"exception"}
    text = str(got["exception"])
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith("ValueError: boom")


def test_our_partition_extra_is_the_records_topic_partition():
    got = line(record("dead letter", (), extra=partition_extra("it-events", 3)))
    assert got["partition"] == "it-events-3"


@pytest.mark.parametrize("tp", [TP("it-events", 2), TopicPartition("it-events", 2)])
def test_faust_and_aiokafka_partition_arguments_name_the_partition(tp: tuple[str, int]):
    got = line(record("Fetching offset for %r at %d", (tp, 17)))
    assert got["partition"] == "it-events-2"


def test_a_record_about_several_partitions_names_none():
    got = line(record("assigned %r and %r", (TP("it-events", 0), TP("it-events", 1))))
    assert "partition" not in got


def test_non_ascii_text_round_trips_as_utf8():
    text = "prix 12,50 € — café, 日本語, naïve"
    out = JsonFormatter(WORKER).format(record("%s", (text,)))
    assert text in out  # written as UTF-8, not \u escapes
    assert json.loads(out.encode().decode("utf-8"))["message"] == text


def test_text_orjson_refuses_is_escaped_not_dropped():
    got = line(record("%s", ("bad \udcff byte",)))
    assert got["message"] == "bad \udcff byte"


def test_a_log_call_with_mismatched_arguments_still_gives_a_json_line():
    got = line(record("two %s %s", ("only-one",)))
    assert "two %s %s" in str(got["message"]) and "only-one" in str(got["message"])


def test_secrets_in_settings_env_or_extras_never_reach_the_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RECPRICE__KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RECPRICE__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("RECPRICE__KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("RECPRICE__KAFKA__SASL_PASSWORD", "hunter2-s3cret")
    settings = Settings()
    assert settings.kafka.password() == "hunter2-s3cret"
    rec = record("connecting to %s", (settings.kafka.bootstrap,), extra={"password": "x-s3cret"})
    out = JsonFormatter(worker_id(settings.app_id, "h", 1)).format(rec)
    assert "s3cret" not in out
    assert set(json.loads(out)) == FIELDS


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_modes_setup_logging_writes_faust_and_aiokafka_records_as_json(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
):
    """The config Faust's worker hands to mode replaces mode's coloured handler."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging(loglevel="info", logging_config=json_logging_config("info", WORKER))
    logging.getLogger("faust.transport.consumer").info("Seek %r", TP("it-events", 5))
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed: é")
    logging.getLogger("streams.worker.app").debug("below the level")
    lines = [orjson.loads(row) for row in stream.getvalue().splitlines()]
    assert [(r["logger"], r["level"]) for r in lines] == [
        ("faust.transport.consumer", "INFO"),
        ("aiokafka.consumer", "WARNING"),
    ]
    assert lines[0]["partition"] == "it-events-5"
    assert lines[1]["message"] == "Heartbeat failed: é"
    assert all(r["worker"] == WORKER for r in lines)


def test_route_to_root_takes_over_console_handlers_only(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    library = logging.getLogger("test_log_format.library")
    console = logging.StreamHandler(sys.stderr)
    library.addHandler(console)
    library.propagate = False
    to_file = logging.getLogger("test_log_format.file")
    elsewhere = logging.StreamHandler(io.StringIO())
    to_file.addHandler(elsewhere)
    try:
        changed = route_to_root()
        assert "test_log_format.library" in changed and "test_log_format.file" not in changed
        assert library.handlers == [] and library.propagate
        assert to_file.handlers == [elsewhere]
    finally:
        library.removeHandler(console)
        to_file.removeHandler(elsewhere)


def test_the_json_worker_writes_transformers_torch_and_warnings_as_json_too():
    """A fresh process set up as ``recprice worker`` does; the libraries would write text."""
    script = (
        "import logging, warnings\n"
        "from streams.settings import Settings\n"
        "from streams.worker.run import use_json_logs\n"
        "use_json_logs(Settings())\n"
        "from transformers.utils import logging as hf\n"
        "hf.get_logger('transformers.modeling_utils').warning('weights not used: é')\n"
        "logging.getLogger('huggingface_hub.file_download').warning('offline')\n"
        "logging.getLogger('torch._dynamo').warning('recompiling')\n"
        "warnings.warn('deprecated knob')\n"
    )
    env = {**os.environ, "RECPRICE__WORKER__LOG_FORMAT": "json", "RECPRICE__SCORER__ENABLED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=120, check=True
    )
    assert done.stdout == b""
    lines = [orjson.loads(row) for row in done.stderr.decode().splitlines()]
    assert [(r["logger"], r["message"]) for r in lines][:3] == [
        ("transformers.modeling_utils", "weights not used: é"),
        ("huggingface_hub.file_download", "offline"),
        ("torch._dynamo", "recompiling"),
    ]
    assert lines[3]["logger"] == "py.warnings" and "deprecated knob" in str(lines[3]["message"])
    assert len(lines) == 4 and all(set(r) == FIELDS for r in lines)


def test_a_json_worker_that_cannot_start_says_why_in_one_json_line():
    script = (
        "from streams.settings import Settings\n"
        "from streams.worker import run\n"
        "def refuse(settings):\n"
        "    raise FileNotFoundError('models/ml is not a recprice model directory')\n"
        "run.build_app = refuse\n"
        "run.check_connection = lambda kafka: None\n"  # no broker in unit tests
        "run.run_worker(Settings())\n"
    )
    env = {**os.environ, "RECPRICE__WORKER__LOG_FORMAT": "json", "RECPRICE__SCORER__ENABLED": "0"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == 1 and done.stdout == b""
    [line] = done.stderr.decode().splitlines()
    record = orjson.loads(line)
    assert (record["level"], record["logger"]) == ("CRITICAL", "streams.worker.run")
    assert "FileNotFoundError: models/ml is not a recprice model directory" in record["exception"]
