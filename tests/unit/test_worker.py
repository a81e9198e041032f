import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from pydantic import ValidationError

from encoders.config import EncoderConfig
from streams.settings import Settings, WorkerSettings
from streams.worker.app import App, create_app
from streams.worker.catalog import Catalog
from streams.worker.run import use_event_loop
from streams.worker.runtime import Runtime


@pytest.fixture
def restore_policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


def loop_type() -> type:
    loop = asyncio.new_event_loop()
    try:
        return type(loop)
    finally:
        loop.close()


def test_default_worker_runs_on_uvloop(restore_policy: None):
    use_event_loop(Settings().worker.event_loop)
    assert issubclass(loop_type(), uvloop.Loop)


def test_asyncio_loop_can_be_chosen_back(restore_policy: None, monkeypatch: pytest.MonkeyPatch):
    use_event_loop("uvloop")
    monkeypatch.setenv("RECPRICE__WORKER__EVENT_LOOP", "asyncio")
    use_event_loop(Settings().worker.event_loop)
    assert not issubclass(loop_type(), uvloop.Loop)
    assert issubclass(loop_type(), asyncio.BaseEventLoop)


def test_unknown_event_loop_is_rejected():
    with pytest.raises(ValidationError, match="event_loop"):
        WorkerSettings(event_loop="gevent")  # type: ignore[arg-type]


def sensors_after_init(keep_monitor: bool) -> tuple[object, list[object]]:
    app = App("monitor-test", keep_monitor=keep_monitor, broker="kafka://127.0.0.1:9")
    app.on_init_dependencies()
    return app.monitor, list(app.sensors)


def test_worker_app_runs_without_faust_monitor_by_default():
    assert Settings().worker.faust_monitor is False
    monitor, sensors = sensors_after_init(keep_monitor=False)
    assert monitor not in sensors


def test_faust_monitor_can_be_kept():
    monitor, sensors = sensors_after_init(keep_monitor=True)
    assert monitor in sensors


def test_a_worker_without_the_scorer_loads_no_model(tmp_path: Path):
    missing = EncoderConfig(model_dir=tmp_path / "no-model-here")

    runtime = Runtime.create(missing, scorer=False)

    assert runtime.model is None and not runtime.catalog.embeds
    with pytest.raises(FileNotFoundError, match="not a recprice model directory"):
        Runtime.create(missing, scorer=True)


# What a worker without the scorer, and the command line itself, must import
# without: the model stack costs seconds and most of a gigabyte to load.
WITHOUT_SCORER = """
import json, sys
import streams.cli.main
from streams.worker.app import create_app
from streams.worker.runtime import Runtime
from streams.settings import Settings
settings = Settings(scorer={"enabled": False}, worker={"data_dir": sys.argv[1]})
create_app(settings, Runtime.create(settings.encoder, scorer=False))
heavy = ("torch", "transformers", "encoders.model", "encoders.ranker")
print(json.dumps(sorted(name for name in heavy if name in sys.modules)))
"""


def test_a_worker_without_the_scorer_and_the_cli_import_no_model_stack(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SCORER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_scoring_worker_gets_the_model_and_a_catalog_that_embeds(tiny_model_dir: Path):
    runtime = Runtime.create(EncoderConfig(model_dir=tiny_model_dir), scorer=True)

    assert runtime.model is not None
    runtime.model.executor.shutdown()
    assert runtime.model.ranker.model_version == "tiny-random" and runtime.catalog.embeds


def test_the_scorer_needs_a_model_in_the_runtime(tmp_path: Path):
    settings = Settings(worker={"data_dir": tmp_path})
    with pytest.raises(ValueError, match="without a model"):
        create_app(settings, Runtime(Catalog(), model=None))


def test_the_producer_batches_up_to_the_configured_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RECPRICE__SCORER__ENABLED", "false")
    monkeypatch.setenv("RECPRICE__WORKER__DATA_DIR", str(tmp_path))
    assert create_app(Settings(), Runtime(Catalog(), None)).conf.producer_max_batch_size == 524_288

    monkeypatch.setenv("RECPRICE__KAFKA__PRODUCER_MAX_BATCH_BYTES", "65536")
    assert create_app(Settings(), Runtime(Catalog(), None)).conf.producer_max_batch_size == 65_536
