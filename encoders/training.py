"""Fine-tune the two-tower recommender on replayed examples (``recprice train``).

Recipe, sized for a 2-core CPU (and faster on a GPU when present):

* the item tower stays the pre-trained encoder, so its outputs are computed
  once and reused every step (cold-start items are scored by the same text
  path at serving time); or, with ``item_train_layers``, its top layers train
  too (see :meth:`Trainer._step`): the main loss scores against a cache of
  every item's vector, recomputed every ``item_refresh`` steps, and a second
  sampled-softmax loss scores against freshly computed vectors of the
  batch's targets and ``item_negatives`` sampled items, which is where the
  item tower's gradients come from;
* the user tower trains only its top ``train_layers`` layers; the frozen lower
  layers' outputs are cached once per example in a file, or recomputed by
  batch, never held in RAM (:mod:`encoders.layer_cache`);
* with several processes (:class:`Parallel`), each computes its round-robin
  share of every global batch and DDP averages the gradients, so the run
  takes the same steps as one process would;
* the head learns the temperature and, when switched on, an item bias and an
  item-ID embedding added to the text vectors, and a recency-weighted pool of
  the user's recent items added to the summary's vector;
* loss: softmax cross-entropy over all items, or over in-batch plus sampled
  negatives with the log-Q sampling correction; optionally plus MSE on ratings;
* AdamW with separate encoder and head learning rates, linear warm-up then
  linear decay, gradient clipping, early stopping on validation NDCG@10.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from transformers import PreTrainedModel

from encoders.config import Precision
from encoders.dataset import Dataset, Example
from encoders.layer_cache import (
    DiskStates,
    LowerStates,
    PooledStates,
    RecomputedStates,
    Tokenize,
    choose_cache,
    depth,
    freeze_below,
    state_bytes,
    upper_forward,
)
from encoders.metrics import mask_rows, ndcg, target_ranks
from encoders.model import (
    ModelSpec,
    Recommender,
    ScoringHead,
    TextTower,
    history_rows,
    save_model_dir,
)
from encoders.precision import autocast_for, uses_bf16
from encoders.train_config import TrainConfig

HISTORY_FILE = "training.json"


@dataclass(frozen=True)
class EpochLog:
    """What one epoch did."""

    epoch: int
    loss: float
    valid_ndcg: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The trained model and how it got there."""

    model: Recommender
    history: tuple[EpochLog, ...]
    best_epoch: int
    best_valid_ndcg: float
    seconds: float
    steps: int = 0
    first_step_loss: float = float("nan")
    """The global batch's mean loss at the first step (the data-parallel check)."""
    seconds_per_step: float = 0.0
    """Wall time of the training steps (validation excluded) over their number."""
    processes: int = 1


def seed_everything(seed: int) -> None:
    """Fix every random generator training touches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_train(examples: Sequence[Example], per_user: int) -> list[Example]:
    """Keep each user's ``per_user`` most recent training examples (0 keeps all)."""
    if not per_user:
        return list(examples)
    kept: dict[str, list[Example]] = {}
    for example in examples:
        kept.setdefault(example.user_id, []).append(example)
    return [e for user in kept.values() for e in user[-per_user:]]


def full_softmax_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each target against every item."""
    return F.cross_entropy(logits, targets)


def sampled_softmax_loss(
    logits: torch.Tensor,
    candidates: torch.Tensor,
    targets: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy over a candidate set with the log-Q correction (Yi et al., 2019).

    ``logits`` are (batch, candidates) scores of the candidate item rows
    ``candidates``; ``log_q`` is the log of each candidate's expected count in
    the set, which is subtracted so that popular items, sampled more often,
    are not over-penalised. Each row's target must be among the candidates;
    other copies of it are masked out.
    """
    corrected = logits - log_q.unsqueeze(0)
    is_target = candidates.unsqueeze(0) == targets.unsqueeze(1)
    first = is_target.float().argmax(1)
    duplicate = is_target.clone()
    duplicate[torch.arange(len(targets)), first] = False
    return F.cross_entropy(corrected.masked_fill(duplicate, float("-inf")), first)


class Candidates:
    """In-batch positives plus negatives drawn from popularity^0.75, with their log-Q."""

    def __init__(self, target_counts: torch.Tensor, negatives: int, batch_size: int) -> None:
        counts = target_counts.float()
        self.in_batch = counts / counts.sum()
        smoothed = (counts + 1.0) ** 0.75
        self.proposal = smoothed / smoothed.sum()
        self.negatives = negatives
        self.batch_size = batch_size

    def draw(self, targets: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Return (candidate rows, log expected count of each in the set)."""
        sampled = (
            torch.multinomial(self.proposal, self.negatives, True, generator=generator)
            if self.negatives
            else torch.zeros(0, dtype=torch.long)
        )
        rows = torch.unique(torch.cat([targets.cpu(), sampled]))
        expected = self.batch_size * self.in_batch[rows] + self.negatives * self.proposal[rows]
        return rows, expected.clamp(min=1e-12).log()


def _rating_loss(
    users: torch.Tensor, items: torch.Tensor, examples: Sequence[Example]
) -> torch.Tensor:
    # The seed's formulation: the cosine of user and item regresses the
    # rating, mapped from [0, 5] onto [-1, 1].
    rated = [i for i, e in enumerate(examples) if e.rating is not None]
    if not rated:
        return users.new_zeros(())
    index = torch.tensor(rated, device=users.device)
    ratings = torch.tensor([examples[i].rating for i in rated], device=users.device)
    cosine = (users[index] * F.normalize(items[index], dim=-1)).sum(-1)
    return F.mse_loss(cosine, ratings.clamp(0, 5) / 2.5 - 1.0)


def _device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def encode_items(
    tower: TextTower,
    tokenizer: Callable[..., dict[str, torch.Tensor]],
    texts: Sequence[str],
    max_length: int,
    precision: Precision = "auto",
    batch_size: int = 256,
) -> torch.Tensor:
    """Item tower vectors of ``texts`` (no grad), on the tower's device."""
    device = next(tower.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            with autocast_for(device, precision):
                chunks.append(tower(ids, mask).embedding.float())
    return torch.cat(chunks) if chunks else torch.zeros(0, tower.dim, device=device)


@dataclass(frozen=True)
class _Encoded:
    """Summaries' lower-layer states and their recent-item rows."""

    states: LowerStates
    history: torch.Tensor
    """(examples, positions) item rows of the recent items, -1 padded."""


@dataclass(frozen=True)
class Parallel:
    """Where this process stands in a data-parallel run (one process: rank 0 of 1).

    The caller has joined the ``torch.distributed`` process group when
    ``world`` > 1; ``device`` is this process's device (None: from the config).
    """

    rank: int = 0
    world: int = 1
    device: torch.device | None = None


def local_share(index: torch.Tensor, parallel: Parallel) -> tuple[torch.Tensor, float]:
    """Return this process's rows of a global batch, and the weight of their mean loss.

    Rows go round-robin to the processes. Weighted by ``len(rows) * world /
    len(index)``, the gradients that DDP averages are those of the global
    batch's mean loss, whatever the split. A process left without rows
    computes one with weight 0, so that every process joins the step.
    """
    rows = index[parallel.rank :: parallel.world]
    if not len(rows):
        return index[:1], 0.0
    return rows, len(rows) * parallel.world / len(index)


@dataclass(frozen=True)
class _Draws:
    """A step's random draws: whether the ID features are on, and the candidate sets."""

    features: bool
    sampled: tuple[torch.Tensor, torch.Tensor] | None
    """Candidate rows and log-Q of the sampled main loss (loss="sampled")."""
    fresh: tuple[torch.Tensor, torch.Tensor] | None
    """Candidate rows and log-Q of the item tower's loss (item_train_layers > 0)."""


class _Step(nn.Module):
    """The loss of one micro-batch as a module's forward: what DDP wraps."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.model = trainer.model
        self.run = trainer._step  # a bound method, not a registered module

    def forward(
        self, index: torch.Tensor, draws: _Draws, weight: float
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Weighted mean loss of rows ``index``, and the fresh item rows and vectors."""
        loss, fresh = self.run(index, draws)
        rows, vectors = fresh if fresh is not None else (None, None)
        return loss * weight, rows, vectors


class Trainer:
    """One fine-tuning run of a :class:`Recommender` on a :class:`Dataset`.

    ``cache_dir`` holds the files of cached lower-layer states (a temporary
    folder is made and removed when None); in a data-parallel run every
    process is given the same one and writes its own share of each file.
    """

    def __init__(
        self,
        base: Recommender,
        dataset: Dataset,
        config: TrainConfig,
        *,
        parallel: Parallel | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.parallel = parallel or Parallel()
        self.device = self.parallel.device or _device(config)
        self.bf16 = uses_bf16(self.device, config.precision, training=True)
        # Validation computes in the serving format, so that the NDCG it
        # selects the best epoch by is the one `recprice evaluate` measures.
        self.serve_bf16 = uses_bf16(self.device, config.precision)
        self.progress = config.progress and self.parallel.rank == 0
        self._tmp = None if cache_dir else tempfile.TemporaryDirectory(prefix="recprice-train-")
        self.cache_dir = cache_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self._files: list[DiskStates] = []
        if config.threads:
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        item_ids = tuple(item.item_id for item in dataset.items)
        user_tower, item_tower = base.user_tower, base.item_tower
        # Separate copies of whichever tower trains: the base stays put.
        if config.train_layers:
            user_tower = TextTower(_copy_encoder(base.user_tower.encoder))
        if config.item_train_layers:
            item_tower = TextTower(_copy_encoder(base.item_tower.encoder))
        head = ScoringHead(
            config.temperature,
            len(item_ids) if config.item_ids or config.item_bias else 0,
            item_ids=item_ids if config.item_ids or config.item_bias else (),
            id_dim=base.item_tower.dim if config.item_ids else 0,
            bias=config.item_bias,
            history=config.history,
            dim=base.item_tower.dim,
        )
        spec = ModelSpec(
            model_version=f"{base.spec.base_encoder}-ft-{int(time.time())}",
            shared_towers=user_tower is item_tower and base.spec.shared_towers,
            temperature=config.temperature,
            item_bias=config.item_bias,
            base_encoder=base.spec.base_encoder,
            item_ids=config.item_ids,
            history=config.history,
            user_max_length=config.user_max_length,
            item_max_length=config.item_max_length,
        )
        self.model = Recommender(user_tower, item_tower, head, base.tokenizer, spec)
        self.model.to(self.device)
        self.split = freeze_below(user_tower, config.train_layers)
        self.item_split = freeze_below(item_tower, config.item_train_layers)
        texts = [item.text() for item in dataset.items]
        self.item_cache: _Encoded | None = None
        if config.item_train_layers:
            # Read at every refresh and every step: always worth keeping.
            # In the serving format: validation and the final vectors read them too.
            states = self._states(
                texts,
                item_tower,
                self.item_split,
                config.item_max_length,
                float("inf"),
                "items",
                serving=True,
            )
            self.item_cache = _Encoded(states, torch.zeros(len(texts), 0))
            self.item_vectors = self._refresh_items(serving=True)
        else:
            self.item_vectors = encode_items(
                item_tower, self.model.tokenizer, texts, config.item_max_length, config.precision
            )

    def _autocast(self, serving: bool = False) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast when this purpose computes in bf16: training steps, or serving."""
        bf16 = self.serve_bf16 if serving else self.bf16
        return autocast_for(self.device, "bf16" if bf16 else "fp32")

    def _tokenize(self, max_length: int) -> Tokenize:
        tokenizer = self.model.tokenizer

        def tokenize(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
            batch = tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            return batch["input_ids"], batch["attention_mask"]

        return tokenize

    def _states(
        self,
        texts: Sequence[str],
        tower: TextTower,
        split: int,
        max_length: int,
        passes: float,
        name: str,
        *,
        shared: bool = True,
        serving: bool = False,
    ) -> LowerStates:
        """Return the frozen lower layers' states of ``texts``: pooled, on disk or recomputed."""
        config = self.config
        # Computed in the format of their purpose (training or serving) and
        # stored in it when that is bf16; otherwise float16 on CPU, half the
        # bytes of float32.
        autocast = functools.partial(self._autocast, serving)
        if self.serve_bf16 if serving else self.bf16:
            dtype = torch.bfloat16
        else:
            dtype = torch.float32 if self.device.type == "cuda" else torch.float16
        mode = choose_cache(
            config.lower_cache,
            trained_layers=depth(tower) - split,
            passes=passes,
            disk_bytes=state_bytes(len(texts), max_length, tower.dim, dtype),
            disk_budget=int(config.cache_disk_gb * 2**30),
        )
        tokenize = self._tokenize(max_length)
        if mode == "pooled":
            return PooledStates(texts, tokenize, tower, autocast, progress=self.progress)
        if mode == "recompute":
            return RecomputedStates(texts, tokenize, tower, split, autocast)
        parallel = self.parallel
        if shared:  # every process writes its round-robin share of one file
            path, rows = name, torch.arange(parallel.rank, len(texts), parallel.world)
        else:  # this process's own texts, in a file of its own
            path, rows = f"{name}-{parallel.rank}", torch.arange(len(texts))
        states = DiskStates(
            texts, tokenize, self.cache_dir / f"{path}.states", max_length, tower.dim, dtype
        )
        self._files.append(states)
        states.fill(tower, split, rows, autocast, batch_size=self._chunk, progress=self.progress)
        if shared:
            self._barrier()
        return states

    @property
    def _chunk(self) -> int:
        """Texts per forward pass of the frozen layers."""
        return self.config.micro_batch_size or self.config.eval_batch_size

    def _barrier(self) -> None:
        if self.parallel.world > 1:
            dist.barrier()

    def _encode(
        self,
        examples: Sequence[Example],
        passes: float,
        name: str,
        *,
        shared: bool = True,
        serving: bool = False,
    ) -> _Encoded:
        states = self._states(
            [e.summary for e in examples],
            self.model.user_tower,
            self.split,
            self.config.user_max_length,
            passes,
            name,
            shared=shared,
            serving=serving,
        )
        history = history_rows([e.recent for e in examples], self.dataset.rows, self.config.history)
        return _Encoded(states, history)

    def _upper(
        self,
        tower: TextTower,
        encoded: _Encoded,
        index: torch.Tensor,
        split: int,
        *,
        serving: bool = False,
    ) -> torch.Tensor:
        hidden, mask = encoded.states.batch(index)
        with self._autocast(serving):
            return upper_forward(tower, hidden.to(self.device), mask.to(self.device), split)

    def _refresh_items(self, *, serving: bool = False) -> torch.Tensor:
        """Every item's vector from the item tower as it is now (no grad)."""
        assert self.item_cache is not None
        cache, tower, split = self.item_cache, self.model.item_tower, self.item_split
        rows = torch.arange(len(cache.states))
        with torch.no_grad():
            return torch.cat(
                [
                    self._upper(tower, cache, part, split, serving=serving)
                    for part in rows.split(self.config.eval_batch_size)
                ]
            )

    def _fresh_items(self, rows: torch.Tensor) -> torch.Tensor:
        """Vectors of item ``rows`` from the item tower as it is now, with gradients."""
        assert self.item_cache is not None
        return self._upper(self.model.item_tower, self.item_cache, rows, self.item_split)

    def _users(
        self,
        encoded: _Encoded,
        index: torch.Tensor,
        *,
        features: bool = True,
        serving: bool = False,
    ) -> torch.Tensor:
        users = self._upper(self.model.user_tower, encoded, index, self.split, serving=serving)
        with self._autocast(serving):
            history = encoded.history[index].to(self.device)
            return self.model.head.with_history(
                users, self.item_vectors, None, history, features=features
            )

    def validate(self, encoded: _Encoded, examples: Sequence[Example]) -> list[int]:
        """Full-ranking ranks of the validation targets, history excluded, in the serving format."""
        self.model.eval()
        rows = self.dataset.rows
        ranks: list[int] = []
        size = self.config.eval_batch_size
        with torch.no_grad():
            for start in range(0, len(examples), size):
                part = examples[start : start + size]
                index = torch.arange(start, start + len(part))
                users = self._users(encoded, index, serving=True)
                logits = self.model.head(users, self.item_vectors).float()
                mask_rows(logits, [[rows[i] for i in e.history if i in rows] for e in part])
                targets = torch.tensor([rows[e.target] for e in part], device=logits.device)
                ranks.extend(target_ranks(logits, targets).tolist())
        return ranks

    def _all_ranks(self, ranks: list[int]) -> list[int]:
        """Every process's validation ranks together (each ranked its own share)."""
        if self.parallel.world == 1:
            return ranks
        gathered: list[list[int] | None] = [None] * self.parallel.world
        dist.all_gather_object(gathered, ranks)
        return [rank for part in gathered for rank in part or []]

    def _mean_loss(self, weighted: torch.Tensor) -> float:
        """Return the global batch's mean loss from this process's weighted share."""
        if self.parallel.world == 1:
            return float(weighted.item())
        total = weighted.detach().float().clone()
        dist.all_reduce(total)
        return float(total.item()) / self.parallel.world

    def _optimizer(
        self, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        config = self.config
        towers = [self.model.user_tower, self.model.item_tower]
        encoder = [p for t in dict.fromkeys(towers) for p in t.parameters() if p.requires_grad]
        head = self.model.head
        recency = [head.recency] if head.recency is not None else []
        groups = [
            {
                "params": [p for p in head.parameters() if p is not head.recency],
                "lr": config.head_lr,
                "weight_decay": 0.0,
            },
            # At the head's rate the recency weights barely move in two epochs.
            {"params": recency, "lr": config.history_lr, "weight_decay": 0.0},
        ]
        if encoder:
            groups.append(
                {"params": encoder, "lr": config.encoder_lr, "weight_decay": config.weight_decay}
            )
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        warmup = max(int(total_steps * config.warmup), 1)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def _wrap(self) -> nn.Module:
        """Return the step module, under DDP when several processes train."""
        step = _Step(self)
        if self.parallel.world == 1:
            return step
        return DistributedDataParallel(
            step,
            device_ids=[self.device] if self.device.type == "cuda" else None,
            # Steps with the ID features off leave their parameters unused.
            find_unused_parameters=self.config.id_dropout > 0,
            forward_sync_buffers=False,
        )

    def fit(self) -> TrainResult:
        """Train with early stopping; the returned model holds the best epoch's weights."""
        try:
            return self._fit()
        finally:
            for states in self._files:
                states.close()
            if self._tmp is not None:
                self._tmp.cleanup()

    def _accumulate(
        self, step_module: nn.Module, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Backward of the global batch ``index``: this process's share, a micro-batch at a time.

        Each micro-batch's mean loss is weighted by its share of the global
        batch, so the summed gradients are the global batch's whatever the
        cut; a micro-batch holds a fraction of the activations in memory.
        DDP averages the gradients once, after the last micro-batch.
        """
        draws = self._draw(index)
        local, weight = local_share(index, self.parallel)
        parts = local.split(self.config.micro_batch_size or len(local))
        total = torch.zeros((), device=self.device)
        fresh_rows = fresh = None
        for number, part in enumerate(parts, 1):
            last = number == len(parts)
            hold = isinstance(step_module, DistributedDataParallel) and not last
            with step_module.no_sync() if hold else contextlib.nullcontext():  # type: ignore[operator]
                loss, fresh_rows, fresh = step_module(part, draws, weight * len(part) / len(local))
                loss.backward()
            total = total + loss.detach()
        return total, fresh_rows, fresh

    def _fit(self) -> TrainResult:
        config = self.config
        parallel = self.parallel
        started = time.perf_counter()
        train = select_train(self.dataset.train, config.max_train_per_user)
        valid = list(self.dataset.valid)[parallel.rank :: parallel.world]
        rows = self.dataset.rows
        self.targets = torch.tensor([rows[e.target] for e in train])
        self.train_examples = train
        steps_per_epoch = math.ceil(len(train) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        if config.max_steps:
            total_steps = min(total_steps, config.max_steps)
        passes = total_steps * config.batch_size / max(len(train), 1)
        self.train_cache = self._encode(train, passes, "train")
        # Each process validates its own share of the users.
        valid_cache = self._encode(valid, config.epochs, "valid", shared=False, serving=True)
        lengths = (
            self.train_cache.states.lengths
            if config.length_buckets
            else torch.zeros(len(train), dtype=torch.long)
        )
        optimizer, scheduler = self._optimizer(total_steps)
        counts = torch.bincount(self.targets, minlength=len(rows))
        self.candidates = Candidates(counts, config.negatives, config.batch_size)
        self.item_candidates = Candidates(counts, config.item_negatives, config.batch_size)
        self.generator = torch.Generator().manual_seed(config.seed)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        step_module = self._wrap()
        best = (-1.0, 0, _snapshot(trainable))
        history: list[EpochLog] = []
        first_loss: float | None = None
        steps = 0
        train_seconds = 0.0
        for epoch in range(1, config.epochs + 1):
            tick = time.perf_counter()
            self.model.train()
            self.model.item_tower.eval()
            batches = epoch_batches(
                lengths, config.batch_size, config.length_buckets, self.generator
            )
            losses = []
            bar = tqdm(
                batches,
                total=min(steps_per_epoch, total_steps - steps),
                desc=f"epoch {epoch}",
                disable=not self.progress,
            )
            for step, index in enumerate(bar, 1):
                optimizer.zero_grad(set_to_none=True)
                loss, fresh_rows, fresh = self._accumulate(step_module, index)
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(self._mean_loss(loss))
                first_loss = losses[0] if first_loss is None else first_loss
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
                if fresh_rows is not None and fresh is not None:
                    # Vectors from just before the step: close enough until
                    # the next full refresh, and free. Written after
                    # backward, which still needed the cache as it was.
                    self.item_vectors[fresh_rows] = fresh
                    if step % config.item_refresh == 0:
                        self.item_vectors = self._refresh_items()
                steps += 1
                if steps >= total_steps:
                    break
            train_seconds += time.perf_counter() - tick
            if self.item_cache is not None:
                self.item_vectors = self._refresh_items(serving=True)
            valid_ndcg = ndcg(self._all_ranks(self.validate(valid_cache, valid)))
            history.append(
                EpochLog(epoch, float(np.mean(losses)), valid_ndcg, time.perf_counter() - tick)
            )
            if self.progress:
                tqdm.write(
                    f"epoch {epoch}: loss {history[-1].loss:.4f} valid ndcg@10 {valid_ndcg:.4f}"
                )
            if valid_ndcg > best[0]:
                best = (valid_ndcg, epoch, _snapshot(trainable))
            elif epoch - best[1] >= config.patience:
                break
            if steps >= total_steps:
                break
        with torch.no_grad():
            for param, value in zip(trainable, best[2], strict=True):
                param.copy_(value)
        if self.item_cache is not None:
            self.item_vectors = self._refresh_items(serving=True)
        self.model.eval()
        return TrainResult(
            self.model,
            tuple(history),
            best[1],
            best[0],
            time.perf_counter() - started,
            steps=steps,
            first_step_loss=first_loss if first_loss is not None else float("nan"),
            seconds_per_step=train_seconds / max(steps, 1),
            processes=parallel.world,
        )

    def _draw(self, global_index: torch.Tensor) -> _Draws:
        """One step's random draws, from the global batch only.

        So each process of a data-parallel run, and each micro-batch, draws
        the same: the same ID dropout, and the same candidates, drawn for all
        the global batch's targets. Drawn in the order training always drew.
        """
        config = self.config
        generator = self.generator
        targets = self.targets[global_index]
        # Drawn only when asked for, so the default run's random stream is unchanged.
        dropout = config.id_dropout
        features = not dropout or float(torch.rand((), generator=generator)) >= dropout
        sampled = None
        if config.loss == "sampled":
            rows, log_q = self.candidates.draw(targets, generator)
            sampled = (rows.to(self.device), log_q.to(self.device))
        fresh = None
        if self.item_cache is not None:
            rows, log_q = self.item_candidates.draw(targets, generator)
            fresh = (rows.to(self.device), log_q.to(self.device))
        return _Draws(features, sampled, fresh)

    def _step(
        self, index: torch.Tensor, draws: _Draws
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Mean loss of rows ``index``, and the item rows it recomputed with their fresh vectors."""
        config = self.config
        features = draws.features
        users = self._users(self.train_cache, index, features=features)
        batch_targets = self.targets[index].to(self.device)
        head = self.model.head
        with self._autocast():
            if draws.sampled is None:
                logits = head(users, self.item_vectors, features=features)
                loss = full_softmax_loss(logits.float(), batch_targets)
            else:
                rows, log_q = draws.sampled
                item_rows = rows if head.item_ids else None
                logits = head(users, self.item_vectors[rows], item_rows, features=features)
                loss = sampled_softmax_loss(logits.float(), rows, batch_targets, log_q)
        if config.rating_weight:
            examples = [self.train_examples[i] for i in index.tolist()]
            items = head.item_side(
                self.item_vectors[batch_targets], batch_targets, features=features
            )
            loss = loss + config.rating_weight * _rating_loss(users, items, examples)
        if draws.fresh is None:
            return loss, None
        # The item tower learns only from candidates that are all freshly
        # computed. Were its gradients to flow through the targets alone, into
        # a softmax whose other rows are cached, it would learn to lift every
        # fresh vector above the stale ones: training loss falls while
        # ranking collapses (docs/model.md, "Why every candidate of the item loss is fresh").
        rows, log_q = draws.fresh
        fresh = self._fresh_items(rows)
        with self._autocast():
            logits = head(users, fresh, rows if head.item_ids else None, features=features)
        item_loss = sampled_softmax_loss(logits.float(), rows, batch_targets, log_q)
        return loss + item_loss, (rows, fresh.detach())


def _copy_encoder(encoder: PreTrainedModel) -> PreTrainedModel:
    clone = type(encoder)(encoder.config)
    clone.load_state_dict(encoder.state_dict())
    return clone


def epoch_batches(
    lengths: torch.Tensor, size: int, buckets: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch's batches of example indices: every example exactly once.

    With ``buckets`` > 0 each run of ``buckets * size`` shuffled examples is
    sorted by ``lengths`` before it is cut into batches, and the batches are
    shuffled again: a step is only as wide as its longest summary, so similar
    lengths together mean less padding computed. It is not free of bias: a
    summary grows with its user's history, so a batch holds users at a more
    similar stage than a random one would.
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not buckets:
        return list(order.split(size))
    runs = order.split(buckets * size)
    batches = torch.cat([run[lengths[run].argsort(stable=True)] for run in runs]).split(size)
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def _snapshot(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def train(
    base: Recommender,
    dataset: Dataset,
    config: TrainConfig,
    *,
    parallel: Parallel | None = None,
    cache_dir: Path | None = None,
) -> TrainResult:
    """Fine-tune ``base`` on ``dataset``; see the module docstring for the recipe."""
    return Trainer(base, dataset, config, parallel=parallel, cache_dir=cache_dir).fit()


def save_trained(result: TrainResult, dataset: Dataset, config: TrainConfig, out: Path) -> None:
    """Write the model directory and ``training.json`` (history, config).

    No item vectors: a worker embeds its catalogue with its own scorer (device,
    number format) and keeps them in its data dir (:mod:`encoders.vector_cache`).
    """
    model = result.model
    save_model_dir(model, out)
    (out / HISTORY_FILE).write_text(
        json.dumps(
            {
                "model_version": model.model_version,
                "config": config.model_dump(),
                "best_epoch": result.best_epoch,
                "best_valid_ndcg@10": result.best_valid_ndcg,
                "seconds": result.seconds,
                "train_examples": len(select_train(dataset.train, config.max_train_per_user)),
                "epochs": [vars(e) for e in result.history],
                "steps": result.steps,
                "first_step_loss": result.first_step_loss,
                "seconds_per_step": result.seconds_per_step,
                "processes": result.processes,
                "device": str(next(model.parameters()).device),
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )
