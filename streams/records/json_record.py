"""The one JSON encoding every record class shares.

A record class says how it maps to and from a JSON value (``to_dict`` and
``from_dict``); ``to_json`` and ``from_json`` are the same for all of them,
so a record has exactly one byte form (docs/architecture.md, "Records").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

import orjson


class JsonRecord:
    """A record with one JSON form."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the record's JSON object (keys in the order they are written)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Build the record from its decoded JSON object."""
        raise NotImplementedError

    def to_json(self) -> bytes:
        """Serialize for a topic, a table or a JSONL file."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(orjson.loads(raw))


class TableRecord(JsonRecord):
    """A table's value; a key never written reads as the record built without arguments."""

    __slots__ = ()

    @classmethod
    def from_stored(cls, raw: bytes | None) -> Self:
        """Decode a table value; None (a key never written) is the empty record."""
        return cls() if raw is None else cls.from_json(raw)


R = TypeVar("R", bound=JsonRecord)


def array_to_json(records: Iterable[JsonRecord]) -> bytes:
    """Serialize records as one JSON array: one message for a user's whole batch."""
    return orjson.dumps([record.to_dict() for record in records])


def array_from_json(cls: type[R], raw: bytes) -> list[R]:
    """Inverse of :func:`array_to_json`."""
    return [cls.from_dict(obj) for obj in orjson.loads(raw)]
