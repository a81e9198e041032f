"""The outcome agent's batching is the experiment's own setting, not ingest's."""

import pytest

from streams.settings import Settings


def test_outcome_batching_is_set_under_experiment_and_leaves_ingest_alone(
    monkeypatch: pytest.MonkeyPatch,
):
    defaults = Settings()
    assert defaults.experiment.outcome_max_batch == defaults.ingest.max_batch
    assert defaults.experiment.outcome_max_wait_s == defaults.ingest.max_wait_s
    monkeypatch.setenv("RECPRICE__EXPERIMENT__OUTCOME_MAX_BATCH", "7")
    monkeypatch.setenv("RECPRICE__EXPERIMENT__OUTCOME_MAX_WAIT_S", "0.5")
    settings = Settings()
    assert settings.experiment.outcome_max_batch == 7
    assert settings.experiment.outcome_max_wait_s == 0.5
    assert settings.ingest == defaults.ingest
