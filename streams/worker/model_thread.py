"""The model and the one thread that runs it, shared by the scoring flow and the catalog."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by every worker; only one that scores loads torch
    from encoders.ranker import Ranker


@dataclass(frozen=True)
class ModelThread:
    """A ranker and its executor: every forward pass, scoring or embedding, runs there."""

    ranker: Ranker
    executor: ThreadPoolExecutor

    @classmethod
    def start(cls, ranker: Ranker) -> ModelThread:
        """Give ``ranker`` its thread."""
        # One thread: the model is not re-entrant, and torch parallelises inside.
        return cls(ranker, ThreadPoolExecutor(max_workers=1, thread_name_prefix="model"))
