"""Process-wide services the agents share, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from encoders.config import EncoderConfig
from streams.worker.catalog import Catalog
from streams.worker.model_thread import ModelThread

if TYPE_CHECKING:
    from encoders.model import Recommender


def load_model(config: EncoderConfig) -> Recommender:
    """Fine-tuned model directory when configured, else zero-shot pre-trained MiniLM."""
    # torch and transformers load here: a worker without the scorer never imports them
    # (bench/RESULTS.md, "A worker without the scorer imports no torch").
    from encoders.model import load_model_dir, load_pretrained

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
    def create(cls, config: EncoderConfig, *, scorer: bool, vectors: Path | None = None) -> Runtime:
        """Load the model when the worker scores, and build the shared services.

        ``vectors``: where the catalogue keeps its item vectors across restarts.
        """
        if not scorer:
            return cls(catalog=Catalog(), model=None)
        from encoders.ranker import Ranker

        model = ModelThread.start(Ranker(load_model(config), config))
        return cls(catalog=Catalog(model, vectors), model=model)
