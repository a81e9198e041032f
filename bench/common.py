"""Pure helpers shared by the benchmarks: timing, percentiles, the results file."""

from __future__ import annotations

import math
import platform
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

T = TypeVar("T")

# Top-level keys every results file carries (bench/RESULTS.md, "Summary"), each
# measured in that run.
REQUIRED_KEYS: tuple[str, ...] = (
    "device",
    "encoder_seq_per_s",
    "scorer_users_per_s",
    "scorer_vs_encoder",
    "batched_vs_single",
    "ingest_events_per_s",
    "e2e_events_per_s",
    "e2e_vs_scorer",
    "p99_latency_ms",
    "state_bytes_per_user",
)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    Matches ``numpy.percentile``'s default method; raises on an empty sample.
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median_by(rounds: Sequence[T], key: Callable[[T], float], what: str) -> T:
    """The round whose ``key`` is the median (the lower one of an even count).

    One real round, with its own companion figures beside it, rather than a
    blend: on a shared machine single rounds move a lot (bench/RESULTS.md, "How
    each figure is measured").
    """
    if not rounds:
        raise ValueError(f"no {what}")
    return sorted(rounds, key=key)[(len(rounds) - 1) // 2]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else float("nan")


def machine_name() -> str:
    """A file-name-safe name of this machine (host name, lower case)."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name or "machine"


def describe_cpu() -> str:
    """One line about the CPU: model name and logical cores."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import os

    return f"{model}, {os.cpu_count()} logical cores"


@dataclass
class Meter:
    """Accumulates work done and seconds spent over repeated timed calls."""

    items: int = 0
    seconds: float = 0.0
    calls: int = 0

    def time(self, fn: Callable[[], object], items: int, sync: Callable[[], None]) -> None:
        """Run ``fn`` once, timed; ``sync`` waits for async devices before each clock read."""
        sync()
        start = time.perf_counter()
        fn()
        sync()
        self.seconds += time.perf_counter() - start
        self.items += items
        self.calls += 1

    @property
    def rate(self) -> float:
        """Items per second."""
        return ratio(self.items, self.seconds)

    @property
    def ms_per_call(self) -> float:
        """Mean milliseconds per call."""
        return ratio(self.seconds * 1000.0, self.calls)


def validate_results(results: Mapping[str, Any]) -> list[str]:
    """Problems with a results object: missing keys, non-numbers, non-positive measurements."""
    problems = []
    for key in REQUIRED_KEYS:
        if key not in results:
            problems.append(f"missing {key}")
            continue
        value = results[key]
        if key == "device":
            if not isinstance(value, str) or not value:
                problems.append("device must be a non-empty string")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{key} must be a number, not {type(value).__name__}")
        elif not math.isfinite(value) or value <= 0:
            problems.append(f"{key} must be finite and positive, got {value}")
    return problems


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    """Write the results JSON (sorted keys, indented) after checking its schema."""
    problems = validate_results(results)
    if problems:
        raise ValueError("results incomplete: " + "; ".join(problems))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats get 3 significant digits or thousands separators."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if not math.isfinite(value):
                return "n/a"
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
