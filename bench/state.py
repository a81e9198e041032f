"""State size: synthetic users written through ``UserState.to_json`` into RocksDB.

The store is opened with Faust's own rocksdict options (what the
``user_state`` table uses) and keys are encoded as the table encodes them (JSON
strings). Each synthetic user copies the final state of a real MovieLens user
(all of them have at least 20 ratings, so windows are full: a heavy-user
bound) with fresh random event-id digests and shifted timestamps, so values do
not compress better than real ones would. Reported: SST bytes per user after a
full compaction (on-disk size: keys, values, index, bloom filter, compression)
and the mean serialized value size.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from streams.records.user_state import RecentEvent, UserState


@dataclass(frozen=True)
class StateResult:
    """Sizes measured for ``users`` synthetic users."""

    users: int
    sst_bytes: int
    value_bytes: int
    key_bytes: int
    seconds: float

    @property
    def sst_bytes_per_user(self) -> float:
        """On-disk bytes per user after compaction."""
        return self.sst_bytes / self.users

    @property
    def mean_value_bytes(self) -> float:
        """Mean ``UserState.to_json`` length."""
        return self.value_bytes / self.users


def synthetic_state(template: UserState, rng: random.Random) -> UserState:
    """``template`` with fresh event digests and ids and a shifted clock."""
    shift = rng.randrange(0, 400 * 86_400_000)
    return replace(
        template,
        recent=tuple(
            RecentEvent(e.type, e.item_id, e.ts + shift, e.rating) for e in template.recent
        ),
        seen=tuple(rng.getrandbits(48) for _ in template.seen),
        last_ts=template.last_ts + shift,
        last_event_id=f"ev-{rng.getrandbits(40):x}",
    )


def run_state(
    templates: Sequence[UserState], users: int, seed: int = 0, log: Callable[[str], None] = print
) -> StateResult:
    """Write ``users`` synthetic states, compact, and measure."""
    from faust.stores.rocksdb import RocksDBOptions
    from rocksdict import WriteBatch

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="recprice-bench-state-"))
    try:
        db = RocksDBOptions(use_rocksdict=True).open(tmp / "user_state.db")
        start = time.perf_counter()
        value_bytes = key_bytes = 0
        batch = WriteBatch(raw_mode=True)
        for n in range(users):
            key = orjson.dumps(f"user-{n:07d}")
            value = synthetic_state(templates[n % len(templates)], rng).to_json()
            batch.put(key, value)
            key_bytes += len(key)
            value_bytes += len(value)
            if len(batch) >= 10_000:
                db.write(batch)
                batch = WriteBatch(raw_mode=True)
        db.write(batch)
        db.flush()
        db.compact_range(None, None)
        sst = db.property_int_value("rocksdb.total-sst-files-size") or 0
        seconds = time.perf_counter() - start
        db.close()
        result = StateResult(users, int(sst), value_bytes, key_bytes, seconds)
        log(
            f"  {users:,} users: {result.sst_bytes_per_user:.0f} B/user on disk after compaction, "
            f"{result.mean_value_bytes:.0f} B mean value ({seconds:.0f} s)"
        )
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
