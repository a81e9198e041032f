"""The worker's log lines as one JSON object each, for a platform's log store to index.

Each line carries the time (ISO 8601, UTC), level, logger, message, the
worker's id, the topic-partition when the record names exactly one, and the
exception text when there is one. It holds what the log call gave and nothing
else: no environment, no settings (README, "Settings"). Only `route_to_root`
changes the process's logging; the rest are pure.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

PARTITION = "partition"
"""The ``extra`` key of a log call about one record: its topic-partition (`partition_extra`)."""


def worker_id(app_id: str, host: str, pid: int) -> str:
    """Name one worker process: its app (consumer group), host (a pod's name) and process id."""
    return f"{app_id}@{host}:{pid}"


def partition_extra(topic: str, partition: int) -> dict[str, str]:
    """Return the ``extra`` of a log call about a record read at ``topic``'s ``partition``."""
    return {PARTITION: f"{topic}-{partition}"}


def partition_of(record: logging.LogRecord) -> str | None:
    """Return the topic-partition a record is about: our ``extra``, or its one TP argument.

    Faust, aiokafka and kafka-python pass partitions as named tuples with
    ``topic`` and ``partition`` fields; a record naming several has none.
    """
    given = record.__dict__.get(PARTITION)
    if isinstance(given, str):
        return given
    args = record.args if isinstance(record.args, tuple) else ()
    named = {tp for tp in map(_topic_partition, args) if tp is not None}
    return named.pop() if len(named) == 1 else None


def _topic_partition(arg: object) -> str | None:
    topic, partition = getattr(arg, "topic", None), getattr(arg, "partition", None)
    if isinstance(arg, tuple) and isinstance(topic, str) and isinstance(partition, int):
        return f"{topic}-{partition}"
    return None


class JsonFormatter(logging.Formatter):
    """Format each record as one line of JSON; never raises, so no record falls back to text."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's fields as one JSON object on one line."""
        return json_line(self.fields(record))

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """Return the record's fields, in the order they are written."""
        try:
            message = record.getMessage()
        except Exception as exc:  # a log call whose arguments do not fit its format
            message = f"{record.msg!r} with arguments {record.args!r} ({exc!r})"
        out = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "worker": self.worker,
        }
        partition = partition_of(record)
        if partition is not None:
            out[PARTITION] = partition
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out


def iso_time(created: float) -> str:
    """Write a record's time as ISO 8601 in UTC with milliseconds: 2026-12-03T06:00:00.123Z."""
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def json_line(fields: dict[str, Any]) -> str:
    """Dump one JSON object as UTF-8 text; text orjson refuses (lone surrogates) is escaped."""
    try:
        return orjson.dumps(fields).decode()
    except orjson.JSONEncodeError:
        return json.dumps(fields)


def json_logging_config(level: str, worker: str) -> dict[str, Any]:
    """Return a ``dictConfig`` that writes every record to stderr through `JsonFormatter`.

    Faust's worker hands it to mode's ``setup_logging`` in place of mode's own
    coloured handler, so Faust's, mode's and aiokafka's records take the same
    path as ours. A fresh dict per call: ``dictConfig`` may change the one it gets.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "worker": worker}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["json"]},
    }


def route_to_root() -> list[str]:
    """Send every logger's records through the root's handlers; return the loggers changed.

    transformers, huggingface_hub and torch give their loggers a text handler
    on stderr of their own when imported (transformers and torch also stop
    propagation); this drops those handlers and turns propagation back on, so
    their lines come out as JSON too. Handlers to files or elsewhere are kept.
    """
    streams = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    consoles = {id(stream) for stream in streams if stream is not None}
    changed = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue  # a placeholder: no logger of that name yet
        own = [
            handler
            for handler in logger.handlers
            if id(getattr(handler, "stream", None)) in consoles  # torch's is no StreamHandler
        ]
        if own or (not logger.propagate and not logger.handlers):
            for handler in own:
                logger.removeHandler(handler)
            logger.propagate = True
            changed.append(name)
    return changed
