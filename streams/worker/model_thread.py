"""The model and the one thread that runs it, shared by the scorer and the catalogue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by every worker; only one that scores loads torch
    from encoders.scorer import BatchScorer


@dataclass(frozen=True)
class ModelThread:
    """A scorer and its executor: every forward pass, scoring or embedding, runs there."""

    scorer: BatchScorer
    executor: ThreadPoolExecutor

    @classmethod
    def start(cls, scorer: BatchScorer) -> ModelThread:
        """Give ``scorer`` its thread."""
        # One thread: the model is not re-entrant, and torch parallelises inside.
        return cls(scorer, ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer"))
