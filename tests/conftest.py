"""Shared fixtures: the local broker and cluster (started on demand), a tiny model, pipelines."""

import os

# Weights come from installed packages only; never reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from encoders.model import save_model_dir, tiny_random_model  # noqa: E402
from streams.offline.local import (  # noqa: E402
    LocalCluster,
    answers,
    start_local_broker,
    stop_worker,
)
from tests.kafka_support import BOOTSTRAP, Pipeline  # noqa: E402

# deploy/broker.sh reads the same variable.
CLUSTER = LocalCluster(int(os.environ.get("RECPRICE_CLUSTER_PORT", "19192")))


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if not answers(BOOTSTRAP):
        start_local_broker(BOOTSTRAP)
    return BOOTSTRAP


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """The 3-node cluster, every node up; stopped at the end if this session started it."""
    started = not CLUSTER.answering()
    CLUSTER.start()  # starts only the nodes that do not run
    yield CLUSTER
    if started:
        CLUSTER.stop()


@pytest.fixture(scope="session")
def cluster_bootstrap(local_cluster: LocalCluster) -> str:
    return local_cluster.bootstrap


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-model")
    # A history head: the stream must pass each state's recent items too.
    save_model_dir(tiny_random_model(seed=7, history=20), path)
    return path


@pytest.fixture
def pipeline(bootstrap: str, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(bootstrap, tiny_model_dir, tmp_path)
    pipe.create()
    yield pipe
    for proc in pipe.workers:
        stop_worker(proc, timeout_s=15)
