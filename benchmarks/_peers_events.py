"""Synthetic shop events written straight into a kawa lake, and label rows, for the training-set benchmark.

`scale` 1.0 is 10 M events of 250 k users over 120 days and 1 M label rows (every user at 4 weekly
cutoffs). Users start on a random day, so some have no event before an early cutoff: their rows must
come back with empty features, not be dropped. Events land in `_date` partitions, as the lake writer
puts them, in the lake's own schema (kawa.events.schema.EVENTS_SCHEMA).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kawa.events.schema import EVENTS_SCHEMA, KEYS_TYPE
from kawa.lake.table import DataFile, LakeTable
from kawa.warehouse import Warehouse

T0 = datetime(2026, 6, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
DAYS = 120
CUTOFF_DAYS = [92, 99, 106, 113]
NAMES = ["view", "cart_add", "cart_remove", "purchase", "session_start", "search", "login"]
SHARES = [0.58, 0.1, 0.03, 0.03, 0.14, 0.08, 0.04]
CATEGORIES = [f"cat_{i:02d}" for i in range(30)]


def sizes(scale: float) -> tuple[int, int]:
    """(users, events) at `scale`; label rows are 4 per user."""
    return max(int(250_000 * scale), 10), max(int(10_000_000 * scale), 100)


def _strings(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(values), pa.string()), "")


def events(scale: float, seed: int = 3) -> pa.Table:
    """The events at `scale`, sorted by time, in the lake's schema."""
    users, n = sizes(scale)
    rng = np.random.default_rng(seed)
    weight = rng.gamma(1.0, 1.0, users)
    user = rng.choice(users, n, p=weight / weight.sum())
    start = rng.uniform(0, DAYS - 10, users)  # the day each user shows up
    t0 = int(T0.timestamp() * 1e6)
    day_f = start[user] + rng.random(n) * (DAYS - start[user])
    at = t0 + (day_f * DAY_US).astype(np.int64)
    order = np.argsort(at, kind="stable")
    user, at = user[order], at[order]
    name = rng.choice(len(NAMES), n, p=SHARES)
    is_purchase = name == NAMES.index("purchase")
    has_category = name <= NAMES.index("cart_remove")
    category = rng.integers(0, len(CATEGORIES), n)
    revenue = np.round(rng.lognormal(3.5, 0.7, n), 2)
    ts = pa.array(at, pa.timestamp("us", tz="UTC"))
    null_strings = pa.nulls(n, pa.string())
    keys = pa.StructArray.from_arrays(
        [_strings("u", user), null_strings, null_strings], fields=list(KEYS_TYPE)
    )
    columns = {
        "event_id": _strings("e", np.arange(n)),
        "event_name": pa.DictionaryArray.from_arrays(name.astype(np.int32), NAMES).cast(pa.string()),
        "sync_date": ts,
        "received_at": ts,
        "keys": keys,
        "page": null_strings,
        "item_id": null_strings,
        "category": pa.DictionaryArray.from_arrays(
            pa.array(category.astype(np.int32), mask=~has_category), CATEGORIES
        ).cast(pa.string()),
        "price": pa.nulls(n, pa.float64()),
        "quantity": pa.nulls(n, pa.int64()),
        "revenue": pa.array(revenue, mask=~is_purchase),
        "properties": null_strings,
        "_date": pc.cast(ts, pa.date32()),
    }
    return pa.table(columns, schema=EVENTS_SCHEMA)


def write_events(warehouse: Warehouse, table: pa.Table) -> int:
    """Replace the warehouse's events with `table`, one Parquet file per `_date` partition."""
    lake = LakeTable(warehouse.lake_root, "events", warehouse.project)
    days = table.column("_date").to_numpy()
    edges = np.flatnonzero(np.diff(days.astype(np.int64))) + 1  # the table is sorted by time
    added = []
    for lo, hi in zip([0, *edges], [*edges, len(days)], strict=True):
        part = table.slice(lo, hi - lo)
        partition = {"_date": str(days[lo])}
        target = lake.new_file(partition, f"bench-{uuid.uuid4().hex[:8]}.parquet")
        pq.write_table(part, target, compression="zstd")
        added.append(
            DataFile(
                path=str(target.relative_to(lake.path)),
                rows=part.num_rows,
                bytes=target.stat().st_size,
                partition=partition,
            )
        )
    lake.commit(added, replace_all=True, partition_by=["_date"])
    return table.num_rows


def label_rows(scale: float, seed: int = 4) -> pa.Table:
    """Every user at each of the 4 weekly cutoffs (midnight UTC), with a 0/1 label and a row id."""
    users, _ = sizes(scale)
    rng = np.random.default_rng(seed)
    t0 = int(T0.timestamp() * 1e6)
    cutoffs = np.repeat(np.array([t0 + d * DAY_US for d in CUTOFF_DAYS], dtype=np.int64), users)
    user = np.tile(np.arange(users), len(CUTOFF_DAYS))
    return pa.table(
        {
            "user_id": _strings("u", user),
            "cutoff": pa.array(cutoffs, pa.timestamp("us", tz="UTC")),
            "label": rng.integers(0, 2, len(user)),
            "row_id": np.arange(len(user), dtype=np.int64),
        }
    )
