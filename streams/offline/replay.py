"""Reading event logs and pacing their replay (pure parts of ``recprice replay``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class LogRecord:
    """One line of a JSONL log: the raw bytes plus the key and time used to produce it."""

    line_no: int
    raw: bytes
    key: bytes | None
    ts: int | None

    @classmethod
    def of(cls, line_no: int, raw: bytes, key_field: str = "user_id") -> LogRecord:
        """Take the key from the record's ``key_field`` and the time from its ``ts``.

        Either is None when the record does not parse or lacks it (a string key,
        an integer ``ts``), so a malformed line is still produced, unkeyed and
        untimed, and lands in the dead-letter topic.
        """
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        key: bytes | None = None
        ts: int | None = None
        if isinstance(obj, dict):
            if isinstance(obj.get(key_field), str):
                key = obj[key_field].encode("utf-8")
            if isinstance(obj.get("ts"), int) and not isinstance(obj.get("ts"), bool):
                ts = obj["ts"]
        return cls(line_no, raw, key, ts)


def read_log(path: Path, key_field: str = "user_id") -> Iterator[LogRecord]:
    """Yield every non-empty line of the file at ``path`` (see `log_records`)."""
    with path.open("rb") as handle:
        yield from log_records(handle, key_field)


def log_records(lines: Iterable[bytes], key_field: str = "user_id") -> Iterator[LogRecord]:
    """Yield every non-empty line, numbered from 1; lines that do not parse still go out."""
    for line_no, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        if raw.strip():
            yield LogRecord.of(line_no, raw, key_field)


def in_range(
    records: Iterable[LogRecord], start: int | None, until: int | None
) -> Iterator[LogRecord]:
    """Keep records with ``start <= ts < until``; untimed records pass when no range is set."""
    for record in records:
        if record.ts is None:
            if start is None and until is None:
                yield record
            continue
        if start is not None and record.ts < start:
            continue
        if until is not None and record.ts >= until:
            continue
        yield record


class Pacer:
    """Sleeps so that event time advances ``speed`` times faster than wall time."""

    def __init__(
        self,
        speed: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, int] | None = None

    def wait(self, ts: int | None) -> None:
        """Block until the record with event time ``ts`` is due; None or no speed = now."""
        if not self.speed or ts is None:
            return
        if self._origin is None:
            self._origin = (self._clock(), ts)
            return
        wall0, ts0 = self._origin
        due = wall0 + (ts - ts0) / 1000.0 / self.speed
        delay = due - self._clock()
        if delay > 0:
            self._sleep(delay)


def paced(records: Iterable[LogRecord], pacer: Pacer) -> Iterator[LogRecord]:
    """Yield each record once ``pacer`` says it is due."""
    for record in records:
        pacer.wait(record.ts)
        yield record
