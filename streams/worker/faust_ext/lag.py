"""Each assigned input partition's end and committed offsets, as Faust's consumer knows them."""

from __future__ import annotations

import faust
from faust.exceptions import ConsumerNotStarted


def input_offsets(app: faust.App) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    """Return (end offset, committed offset) of every assigned partition but the changelogs'.

    Both come from memory, no request: the end offset from the consumer's last
    fetch (None before one), the committed offset from Faust's record of its
    own commits (its private ``_committed_offset``, of the versions
    `faust_ext.recovery` pins). Run it on the app's event loop.
    """
    consumer = app.consumer
    try:
        assigned = consumer.assignment()
    except ConsumerNotStarted:
        return {}
    changelogs = app.tables.changelog_topics
    committed = consumer._committed_offset  # type: ignore[attr-defined]
    return {
        (tp.topic, tp.partition): (consumer.highwater(tp), committed.get(tp))
        for tp in assigned
        if tp.topic not in changelogs
    }
