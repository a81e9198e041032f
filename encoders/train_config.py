"""Hyper-parameters of ``recprice train``, apart from the training code.

The command line reads its defaults from :class:`TrainConfig` when it starts,
so this module imports neither torch nor transformers: every ``recprice``
command would otherwise pay for loading them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from encoders.config import Precision


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (all of them land in ``training.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, description="Seed of torch, numpy and random.")
    # Defaults: the recipe measured on MovieLens-100K that fits 60 minutes of
    # a 2-core CPU (docs/model.md, "Default recipe"); raise epochs and examples on a GPU.
    epochs: int = Field(2, ge=1, le=1000, description="Upper bound on epochs.")
    patience: int = Field(2, ge=1, description="Epochs without a better valid NDCG@10 to stop.")
    max_steps: int = Field(
        0, ge=0, description="Stop after this many steps (validating then); 0 = epochs decide."
    )
    batch_size: int = Field(128, ge=2, le=65_536, description="Examples per step.")
    micro_batch_size: int = Field(
        32,
        ge=0,
        description="Examples per forward and backward pass, their gradients summed into the "
        "step's: fewer activations in memory, the same step; 0 = the whole batch at once.",
    )
    encoder_lr: float = Field(3e-4, gt=0, description="AdamW learning rate of the encoder.")
    head_lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the head.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay of the encoder.")
    warmup: float = Field(0.05, ge=0, lt=1, description="Share of the steps spent warming up.")
    grad_clip: float = Field(1.0, gt=0, description="Max global gradient norm.")
    train_layers: int = Field(
        2, ge=0, le=48, description="Top user-tower layers fine-tuned; 0 = user tower frozen."
    )
    user_max_length: int = Field(128, ge=8, le=512, description="Token budget of a summary.")
    item_max_length: int = Field(64, ge=8, le=512, description="Token budget of an item text.")
    item_train_layers: int = Field(
        0,
        ge=0,
        le=48,
        description="Top item-tower layers fine-tuned; 0 = item tower frozen (the text path's "
        "item side stays the pre-trained encoder).",
    )
    item_refresh: int = Field(
        50, ge=1, description="Steps between recomputing every cached item vector."
    )
    item_negatives: int = Field(
        128,
        ge=0,
        description="Sampled negatives per step, besides the in-batch targets, in the item "
        "tower's loss (item_train_layers > 0).",
    )
    length_buckets: int = Field(
        0,
        ge=0,
        description="Batches whose summaries are grouped by length: each run of this many "
        "batches is sorted by token count before it is cut, and the batches are then "
        "shuffled; 0 = plain random batches. Less padding per step, same examples per epoch.",
    )
    max_train_per_user: int = Field(
        80, ge=0, description="Most recent training examples kept per user; 0 = all."
    )
    loss: Literal["full", "sampled"] = Field(
        "full", description="Softmax over all items, or over in-batch + sampled negatives."
    )
    negatives: int = Field(
        512, ge=1, description="Sampled negatives per step (loss=sampled), drawn ~ pop^0.75."
    )
    rating_weight: float = Field(0.0, ge=0, description="Weight of the MSE-on-ratings term.")
    item_ids: bool = Field(True, description="Learned item-ID embedding on the item side.")
    item_bias: bool = Field(True, description="Learned item bias (popularity) on the item side.")
    history: int = Field(
        20, ge=0, le=200, description="Recent items pooled into the user vector; 0 = summary only."
    )
    history_lr: float = Field(
        0.02, gt=0, description="AdamW learning rate of the history's recency weights."
    )
    id_dropout: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of steps trained with the item-ID features off, so the text path "
        "must rank on its own too (what cold items and the ids-off score rely on).",
    )
    temperature: float = Field(0.05, gt=0, le=1, description="Initial softmax temperature.")
    lower_cache: Literal["auto", "disk", "recompute"] = Field(
        "auto",
        description="Where the frozen lower layers' states live: a file read back by batch, "
        "recomputed by batch, or auto (the file when each example is read at least twice and "
        "it fits cache_disk_gb). A fully frozen tower keeps one pooled vector per example.",
    )
    cache_disk_gb: float = Field(64.0, gt=0, description="Largest states file auto writes, in GiB.")
    eval_batch_size: int = Field(256, ge=1, description="Users per validation forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train.")
    precision: Precision = Field(
        "auto",
        description="bf16 autocast, float32, or auto (bf16 on CUDA and on CPUs with native bf16).",
    )
    threads: int = Field(0, ge=0, le=256, description="torch CPU threads; 0 = torch default.")
    progress: bool = Field(True, description="Show tqdm progress bars.")
