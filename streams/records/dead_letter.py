"""Dead-letter records: the original bytes, why they failed, where from.

The contract is in docs/architecture.md, "Records".
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Self

from streams.records.json_record import JsonRecord


@dataclass(frozen=True, slots=True)
class DeadLetter(JsonRecord):
    """A record that could not be processed (topic ``dlq``)."""

    topic: str
    partition: int
    offset: int
    raw: str
    """The original payload: as text when it is UTF-8, else base64."""
    raw_encoding: str
    """``utf-8`` or ``base64``."""
    error: str
    ts: int
    """When it was dead-lettered (epoch ms)."""

    @classmethod
    def of(
        cls,
        topic: str,
        partition: int,
        offset: int,
        payload: bytes | None,
        error: str,
        ts_ms: int | None = None,
    ) -> Self:
        """Dead-letter ``payload`` (None is empty) read at ``topic``/``partition``/``offset``."""
        data = payload or b""
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(data).decode("ascii"), "base64"
        ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
        return cls(topic, partition, offset, text, encoding, error, ts)

    def payload(self) -> bytes:
        """Recover the original payload."""
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")
