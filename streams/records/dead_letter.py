"""Dead-letter records: the original bytes, why they failed, where from.

The contract is in docs/architecture.md, "Records".
"""

from __future__ import annotations

import base64
import time

import orjson


def dlq_record(
    topic: str, partition: int, offset: int, raw: bytes | None, error: str, ts_ms: int | None = None
) -> bytes:
    """Build the DLQ value; ``raw`` is kept as text when it is UTF-8, else base64."""
    payload = raw or b""
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    return orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "raw": text,
            "raw_encoding": encoding,
            "error": error,
            "ts": ts_ms if ts_ms is not None else int(time.time() * 1000),
        }
    )


def raw_bytes(record: dict[str, object]) -> bytes:
    """Recover the original payload of a decoded DLQ record."""
    raw = str(record["raw"])
    if record.get("raw_encoding") == "base64":
        return base64.b64decode(raw)
    return raw.encode("utf-8")
