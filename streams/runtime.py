"""Process-wide services the agents share, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from encoders.config import EncoderConfig
from encoders.model import Recommender, load_model_dir, load_pretrained
from encoders.scorer import BatchScorer
from streams.catalog import Catalog
from streams.model_thread import ModelThread


def load_model(config: EncoderConfig) -> Recommender:
    """Fine-tuned model directory when configured, else zero-shot pre-trained MiniLM."""
    if config.model_dir is not None:
        return load_model_dir(config.model_dir)
    return load_pretrained()


@dataclass(frozen=True)
class Runtime:
    """The catalogue and, in a worker that scores, the model and its thread."""

    catalog: Catalog
    model: ModelThread | None
    """None in a worker without the scorer: it loads no model and embeds nothing."""

    @classmethod
    def create(cls, config: EncoderConfig, *, scorer: bool) -> Runtime:
        """Load the model when the worker scores, and build the shared services."""
        if not scorer:
            return cls(catalog=Catalog(), model=None)
        model = ModelThread.start(BatchScorer(load_model(config), config))
        return cls(catalog=Catalog(model), model=model)
