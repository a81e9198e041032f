"""Helpers for tests on the real broker: a test's deployment (streams.offline.deployment)."""

from __future__ import annotations

import os
from pathlib import Path

from streams.offline.deployment import Deployment, KafkaValue, unique_prefix

# The same variable deploy/broker.sh reads, so `make test PORT=...` moves both.
BOOTSTRAP = f"127.0.0.1:{os.environ.get('RECPRICE_BROKER_PORT', '19092')}"


class Pipeline(Deployment):
    """One test's deployment: prefix ``it-``, short batching waits, and the model under test.

    ``model_dir`` None runs the real pre-trained MiniLM.
    """

    def __init__(
        self,
        bootstrap: str,
        model_dir: Path | None,
        root: Path,
        kafka: dict[str, KafkaValue] | None = None,
    ) -> None:
        env = {
            "RECPRICE__SCORER__MAX_WAIT_S": "0.02",
            "RECPRICE__EXPERIMENT__BANDIT_INTERVAL_S": "0.5",
        }
        if model_dir is not None:
            env["RECPRICE__ENCODER__MODEL_DIR"] = str(model_dir)
            env["RECPRICE__ENCODER__CPU_THREADS"] = "1"
        super().__init__(
            bootstrap, root, prefix=unique_prefix("it"), kafka=dict(kafka or {}), worker_env=env
        )
        self.model_dir = model_dir
