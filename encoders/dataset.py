"""Training and evaluation examples from an event log, replayed as the stream would.

Events are replayed in time order (ties in file order) through the stream's
own :func:`apply_event` and :func:`render_summary`. Each interaction with a
catalogue item becomes one example: the user's summary *just before* the
interaction and the item interacted with. Per user, the last example is the
test case, the second to last the validation case, the rest are training.
"""

from __future__ import annotations

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
