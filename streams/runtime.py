"""Process-wide services the agents share, built from the settings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from encoders.config import EncoderConfig
from encoders.model import Recommender, load_model_dir, load_pretrained
from encoders.scorer import BatchScorer
from streams.catalog import Catalog


def load_model(config: EncoderConfig) -> Recommender:
    """Fine-tuned model directory when configured, else zero-shot pre-trained MiniLM."""
    if config.model_dir is not None:
        return load_model_dir(config.model_dir)
    return load_pretrained()


@dataclass
class Runtime:
    """The scorer, its single worker thread and the catalogue."""

    scorer: BatchScorer
    executor: ThreadPoolExecutor
    catalog: Catalog

    @classmethod
    def create(cls, config: EncoderConfig, model: Recommender | None = None) -> Runtime:
        """Load the model (or use ``model``) and build the shared services."""
        scorer = BatchScorer(model if model is not None else load_model(config), config)
        # One thread: the model is not re-entrant, and torch parallelises inside.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        return cls(scorer=scorer, executor=executor, catalog=Catalog(scorer, executor))
