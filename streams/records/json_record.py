"""The one JSON encoding every record class shares.

A record is a dataclass whose JSON object has its fields as keys, in the
order they are declared (an optional field is left out while None); a class
whose JSON differs (short keys, nested records, validation) says so in its
own ``to_dict``/``from_dict``. ``to_json`` and ``from_json`` are the same for
all, so a record has exactly one byte form (docs/architecture.md, "Records").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

import orjson


class JsonRecord:
    """A record with one JSON form."""

    __slots__ = ()

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of the JSON object while None (and read back as None when absent)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the record's JSON object: its fields in declared order."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None or f.name not in self.OPTIONAL:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Build the record from its decoded JSON object."""
        values = {
            f.name: obj.get(f.name) if f.name in cls.OPTIONAL else obj[f.name]
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        }
        return cls(**values)

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


Row = TypeVar("Row", bound=tuple[Any, ...])


@dataclasses.dataclass(frozen=True)
class PerItem(TableRecord, Generic[Row]):
    """One user's map item id -> a row (a named tuple, written as a JSON array), in order."""

    ROW: ClassVar[Callable[..., Any]]
    """The row type, called with a decoded array's values."""

    by_item: Mapping[str, Row] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return item id -> the row's values, keeping the map's order."""
        return {item_id: list(row) for item_id, row in self.by_item.items()}

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls({item_id: cls.ROW(*row) for item_id, row in obj.items()})


R = TypeVar("R", bound=JsonRecord)


def array_to_json(records: Iterable[JsonRecord]) -> bytes:
    """Serialize records as one JSON array: one message for a user's whole batch."""
    return orjson.dumps([record.to_dict() for record in records])


def array_from_json(cls: type[R], raw: bytes) -> list[R]:
    """Inverse of :func:`array_to_json`."""
    return [cls.from_dict(obj) for obj in orjson.loads(raw)]
