"""Realistic inputs for the benchmarks: MovieLens-100K replayed through the stream's state code.

User summaries come from states taken at random points of each user's history,
so their token lengths follow the real distribution the scorer sees.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from encoders.behaviour import StateConfig, apply_event, render_summary
from streams.offline.movielens import bundled_dir, read_events, read_items
from streams.records.inputs import Event, Item, item_titles
from streams.records.user_state import UserState


@dataclass(frozen=True)
class Workload:
    """Catalogue, sampled user states and their summaries."""

    items: dict[str, Item]
    states: list[tuple[str, UserState]]
    """(user_id, state) pairs, each a distinct (user, moment)."""
    events: list[Event]
    """Every MovieLens event, time-ordered."""
    config: StateConfig
    latest: dict[str, UserState] = field(default_factory=dict)
    """Each MovieLens user's state after all their events."""

    def summaries(self) -> list[str]:
        """The summary text of every sampled state."""
        titles = item_titles(self.items)
        return [render_summary(s, titles, self.config) for _, s in self.states]

    def item_texts(self) -> list[tuple[str, str]]:
        """(item_id, text) pairs for the item index."""
        return [(i.item_id, i.text()) for i in self.items.values()]


def load_workload(
    n_states: int, seed: int = 0, config: StateConfig | None = None, folder: Path | None = None
) -> Workload:
    """Replay MovieLens-100K and sample ``n_states`` user states (uniformly over events).

    ``folder`` holds the ``ml-100k.inter``/``.item`` files; the default is recbole's copy.
    """
    config = config or StateConfig()
    folder = folder or bundled_dir()
    items = {i.item_id: i for i in read_items(folder)}
    events = read_events(folder, {i.item_id: i.base_price for i in items.values()})
    rng = random.Random(seed)
    take = set(rng.sample(range(len(events)), min(n_states, len(events))))
    states: dict[str, UserState] = {}
    sampled: list[tuple[str, UserState]] = []
    for n, event in enumerate(events):
        item = items.get(event.item_id)
        state = apply_event(
            states.get(event.user_id, UserState()),
            event,
            item.category if item else None,
            item.base_price if item else None,
            config,
        )
        states[event.user_id] = state
        if n in take:
            sampled.append((event.user_id, state))
    rng.shuffle(sampled)
    return Workload(items, sampled, events, config, states)
