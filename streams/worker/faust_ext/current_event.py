"""Faust's notion of the *current event*, set explicitly for batch agents."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import faust
from faust import streams as faust_streams


@contextlib.contextmanager
def acting_for(event: faust.types.EventT) -> Iterator[None]:
    """Make Faust's table calls resolve against ``event``'s partition.

    Faust's RocksDB store and changelog pick the partition of the *current
    event*; in a batch that is whichever event came last, so without this a
    user's state would be read from and written to another partition's
    store and changelog. Faust 0.15 keeps the current event in this
    context variable (a weak reference).
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)
