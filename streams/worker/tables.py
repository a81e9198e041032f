"""The app's tables: RocksDB (through rocksdict) with a compacted changelog, bytes by user key."""

from __future__ import annotations

import faust
from faust.types import TableT


def bytes_table(app: faust.App, name: str, partitions: int) -> TableT:
    """Declare a table of bytes keyed by a string, stored in RocksDB via rocksdict.

    Faust has no ``rocksdict://`` store scheme: its ``rocksdb://`` store picks
    rocksdict per table through this option. The changelog is created with
    the topics (`streams.topics.AppTables`), compacted and never time-retained.
    """
    return app.Table(
        name,
        default=None,
        partitions=partitions,
        key_type=str,
        value_type=bytes,
        options={"driver": "rocksdict"},
    )
