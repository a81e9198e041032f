"""Typed configuration of the text encoders and the scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Precision = Literal["auto", "fp32", "bf16"]
"""Tower number format; what ``auto`` picks is decided in :mod:`encoders.precision`."""


class EncoderConfig(BaseModel):
    """Which model scores users, and how it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: Path | None = Field(
        None,
        description="Fine-tuned model directory (recprice.json + towers); "
        "None = zero-shot with the bundled pre-trained all-MiniLM-L6-v2.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the towers run; auto picks CUDA when present."
    )
    precision: Precision = Field(
        "auto",
        description="Tower number format: bf16 autocast, float32, or auto (bf16 on "
        "CUDA, float32 on CPU, where bf16 is faster on CPUs with native bf16 but "
        "breaks exact train/serve parity).",
    )
    cpu_threads: int = Field(0, ge=0, le=256, description="torch CPU threads; 0 = torch default.")
    user_max_length: int = Field(128, ge=8, le=512, description="Token budget of a user summary.")
    item_max_length: int = Field(64, ge=8, le=512, description="Token budget of an item text.")
    item_batch_size: int = Field(
        128, ge=1, le=4096, description="Items per forward pass when building the index."
    )
    top_k: int = Field(10, ge=1, le=1000, description="Items recommended per user.")
