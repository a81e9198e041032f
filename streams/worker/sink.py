"""What an agent's per-batch function reads and writes, as protocols without Faust.

Each flow's batch function takes its batch, its table and a `Sink`, never the
app, a topic or a Faust table, so a unit test calls it with a list, a dict and
a recording sink, without a broker; the agent only iterates Faust's batches
and calls it. `streams.worker.wiring` has the worker's implementations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

Record = tuple[str, bytes, bytes]
"""An output record: (topic name, key, value)."""

SendDeadLetter = Callable[[str, int, int, bytes | None, str], Awaitable[None]]
"""Dead-letter raw bytes read at (topic, partition, offset), with the reason."""


class Origin(Protocol):
    """Where a consumed record was read, and its key (Faust's ``Message`` has these)."""

    @property
    def topic(self) -> str: ...  # noqa: D102
    @property
    def partition(self) -> int: ...  # noqa: D102
    @property
    def offset(self) -> int: ...  # noqa: D102
    @property
    def key(self) -> bytes | None: ...  # noqa: D102


class Received(Protocol):
    """A consumed record as a batch function reads it (Faust's events are such records)."""

    @property
    def value(self) -> Any: ...  # noqa: D102
    @property
    def message(self) -> Origin: ...  # noqa: D102


R_contra = TypeVar("R_contra", bound=Received, contravariant=True)


class Sink(Protocol):
    """Where a batch function's output goes."""

    async def send(self, records: Sequence[Record]) -> None:
        """Send every record; return once the broker has acknowledged them all."""

    async def dead_letter(self, received: Received, reason: str) -> None:
        """Send ``received``'s original bytes, where it was read and ``reason`` to the DLQ."""


class Table(Protocol[R_contra]):
    """A table of bytes by key; each key is read and written in the partition of its record.

    Faust's table stores and changelogs are per partition, and a user's
    records all come from one partition: ``via`` names the record whose
    partition holds the key.
    """

    def get(self, key: str, via: R_contra) -> bytes | None:
        """Return the stored value of ``key``, None when there is none."""

    def set(self, key: str, value: bytes, via: R_contra) -> None:
        """Store ``value`` under ``key``."""

    async def flush(self) -> None:
        """Return once every value stored so far is in the changelog."""
