"""Training and evaluation examples from an event log, replayed as the stream would.

Events are replayed in time order (ties in file order) through the stream's
own :func:`apply_event` and :func:`render_summary`. Each interaction with a
catalogue item becomes one example: the user's summary *just before* the
interaction and the item interacted with. Per user, the last example is the
test case, the second to last the validation case, the rest are training.
A seeded share of the items can be held out of training entirely
(:func:`held_out_items`, :func:`training_view`; docs/model.md, "Cold items:
the held-out split").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from encoders.behaviour import StateConfig, apply_with_catalog, render_summary
from streams.records.files import read_events, read_items
from streams.records.inputs import Event, Item, item_titles
from streams.records.user_state import UserState


@dataclass(frozen=True, slots=True)
class Example:
    """One (summary before the interaction, target item) pair."""

    user_id: str
    summary: str
    target: str
    rating: float | None
    recent: tuple[str, ...] = ()
    """The state's recent item ids before the interaction, most recent first."""
    history: frozenset[str] = frozenset()
    """Items the user interacted with before (kept for validation and test only)."""
    state: UserState | None = None
    """The stream's state the summary was rendered from (validation and test only)."""


@dataclass(frozen=True)
class Dataset:
    """Items and the time-split examples of one event log."""

    items: tuple[Item, ...]
    """Catalogue sorted by ``item_id``: the row order of item indexes and head tables."""
    train: tuple[Example, ...]
    valid: tuple[Example, ...]
    test: tuple[Example, ...]
    skipped_events: int = 0
    """Invalid event lines, or events on items missing from the catalogue."""
    skipped_items: int = 0
    """Invalid item lines."""
    rows: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {item.item_id: r for r, item in enumerate(self.items)})

    def item_texts(self) -> list[tuple[str, str]]:
        """(item_id, text) pairs in row order, as :meth:`Ranker.build_index` takes them."""
        return [(item.item_id, item.text()) for item in self.items]


def build_dataset(
    events: Iterable[Event], items: Iterable[Item], config: StateConfig | None = None
) -> Dataset:
    """Replay ``events`` (already in time order) and split each user's examples by time."""
    config = config or StateConfig()
    catalog = {item.item_id: item for item in items}
    ordered = tuple(sorted(catalog.values(), key=lambda item: item.item_id))
    title_of = item_titles(catalog)
    states: dict[str, UserState] = {}
    per_user: dict[str, list[tuple[Example, UserState, list[str]]]] = {}
    histories: dict[str, list[str]] = {}
    skipped = 0
    for event in events:
        state = states.get(event.user_id, UserState())
        item = catalog.get(event.item_id)
        after = apply_with_catalog(state, event, catalog, config)
        if after is state:  # duplicate event id: the stream drops it too
            continue
        states[event.user_id] = after
        history = histories.setdefault(event.user_id, [])
        if item is None:
            # The stream keeps the event in the state, but nothing can rank it.
            skipped += 1
        else:
            example = Example(
                event.user_id,
                render_summary(state, title_of, config),
                item.item_id,
                event.rating,
                state.recent_items(),
            )
            per_user.setdefault(event.user_id, []).append((example, state, history))
        history.append(event.item_id)
    return _split(ordered, per_user, skipped)


def _split(
    items: tuple[Item, ...],
    per_user: dict[str, list[tuple[Example, UserState, list[str]]]],
    skipped: int,
) -> Dataset:
    train: list[Example] = []
    valid: list[Example] = []
    test: list[Example] = []
    for user_examples in per_user.values():
        n = len(user_examples)
        for pos, (example, state, history) in enumerate(user_examples):
            if pos < n - 2:
                train.append(example)
                continue
            held_out = Example(
                example.user_id,
                example.summary,
                example.target,
                example.rating,
                example.recent,
                # Every applied event bumps the state version once, so the
                # version counts the user's events before this one.
                history=frozenset(history[: state.version]),
                state=state,
            )
            (test if pos == n - 1 else valid).append(held_out)
    return Dataset(items, tuple(train), tuple(valid), tuple(test), skipped)


def load_dataset(events_path: Path, items_path: Path, config: StateConfig | None = None) -> Dataset:
    """Read ``events.jsonl`` and ``items.jsonl`` (our record contracts) and build examples."""
    items, bad_items = read_items(items_path)
    events, bad_events = read_events(events_path)
    dataset = build_dataset(events, items, config)
    return Dataset(
        dataset.items,
        dataset.train,
        dataset.valid,
        dataset.test,
        skipped_events=dataset.skipped_events + bad_events,
        skipped_items=bad_items,
    )


def held_out_items(dataset: Dataset, share: float, seed: int) -> frozenset[str]:
    """Pick a seeded random ``share`` of the items that are some example's target.

    Candidates are the catalogue items the log interacts with (a target in
    train, valid or test), so every held-out item takes its examples out of
    training, and about ``share`` of the test cases land on held-out items.
    Items are ranked by the SHA-256 of ``"{seed}:{item_id}"`` and the first
    ``round(share * candidates)`` are held out (at least one when ``share``
    > 0, never all of them): the same seed picks the same items on every
    platform and Python version, and a new item does not reshuffle the rest.
    """
    if not 0 <= share < 1:
        raise ValueError(f"the held-out share must be in [0, 1), not {share}")
    targets = {e.target for split in (dataset.train, dataset.valid, dataset.test) for e in split}
    candidates = sorted(item.item_id for item in dataset.items if item.item_id in targets)
    if share == 0 or len(candidates) < 2:
        return frozenset()
    count = min(max(round(share * len(candidates)), 1), len(candidates) - 1)

    def draw(item_id: str) -> bytes:
        return hashlib.sha256(f"{seed}:{item_id}".encode()).digest()

    return frozenset(sorted(candidates, key=draw)[:count])


def _keep(examples: tuple[Example, ...], held_out: frozenset[str]) -> tuple[Example, ...]:
    return tuple(e for e in examples if e.target not in held_out)


def training_view(dataset: Dataset, held_out: frozenset[str]) -> Dataset:
    """Return what a model trained without the ``held_out`` items sees.

    The catalogue lacks them (so the head's item tables get no row for them),
    and every example whose target is one of them is dropped from train,
    valid and test alike: early stopping must not rank them, and could not
    (they have no row). Summaries, recent items and histories may still name
    them: they say what the user saw, and rows of unknown items are skipped.
    """
    return Dataset(
        tuple(item for item in dataset.items if item.item_id not in held_out),
        _keep(dataset.train, held_out),
        _keep(dataset.valid, held_out),
        _keep(dataset.test, held_out),
        dataset.skipped_events,
        dataset.skipped_items,
    )


def evaluation_view(dataset: Dataset, held_out: frozenset[str]) -> Dataset:
    """Return the whole catalogue and every valid and test case, with training's train cases.

    Models rank every item, held-out ones included, on every case; what is
    learned from the train examples (popularity counts) comes from the
    training view, so held-out items count for nothing there.
    """
    return Dataset(
        dataset.items,
        _keep(dataset.train, held_out),
        dataset.valid,
        dataset.test,
        dataset.skipped_events,
        dataset.skipped_items,
    )
