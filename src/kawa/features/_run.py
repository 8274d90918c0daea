"""Run a feature view for a set of (entity, cutoff) rows in a warehouse connection, or in shards."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from kawa.features._compile import DAY_US, cutoff_buckets_sql, shard_of_sql
from kawa.features.errors import FeatureError
from kawa.features.view import FeatureView
from kawa.warehouse import Warehouse


@dataclass(frozen=True)
class Shards:
    """Where a spec view's query may run split by entity: `count` connections from `connect`.

    The running totals stream on one thread, so one query keeps about one core busy on its longest
    step; `count` single-threaded queries, each over the entities whose key hashes to its number,
    run side by side and keep every core busy. Each reads the events itself and works within its
    own connection's memory limit.
    """

    count: int
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def shards_of(warehouse: Warehouse) -> Shards:
    """One single-threaded connection per warehouse thread."""
    return Shards(warehouse.threads, lambda: warehouse.connect(threads=1))


def compute_view(
    db: duckdb.DuckDBPyConnection,
    view: FeatureView,
    cutoffs_sql: str,
    out: str,
    *,
    row_id: str | None = None,
    shards: Shards | None = None,
) -> list[str]:
    """Fill temp table `out` with `view`'s features for the rows of `cutoffs_sql`; returns their names.

    `cutoffs_sql` yields the view's entity column and a TIMESTAMPTZ `cutoff`. Without `row_id`, `out`
    gets one row per distinct (entity, cutoff) with the entity column, `cutoff` and the features.
    With `row_id` (a column of `cutoffs_sql`), `out` gets exactly one row per input row: `row_id`
    and the features, rows with a NULL entity or cutoff included.

    With `shards`, a spec view runs as that many queries side by side, each over a share of the
    entities (when the label rows' entity column has the type of the view's key, so both hash alike).
    """
    col = f'"{view.entity.column}"'
    keep = f', "{row_id}"' if row_id else ""
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE __cutoff_rows AS SELECT {col}, cutoff{keep} FROM ({cutoffs_sql})"
    )
    first, last, origin = db.execute(
        f"SELECT min(epoch_us(cutoff)), max(epoch_us(cutoff)), mode(epoch_us(cutoff) % {DAY_US}) "
        f"FROM __cutoff_rows WHERE {col} IS NOT NULL"
    ).fetchall()[0]
    ((mixed,),) = db.execute(
        f"SELECT bool_or(epoch_us(cutoff) % {DAY_US} <> {int(origin or 0)}) FROM __cutoff_rows "
        f"WHERE {col} IS NOT NULL"
    ).fetchall()
    aligned = origin is not None and not mixed
    # A spec reads every row itself; SQL of the user's sees distinct (entity, cutoff) pairs only.
    by_rows = row_id is not None and view.is_spec
    if by_rows:
        db.execute("CREATE OR REPLACE TEMP VIEW cutoffs AS SELECT * FROM __cutoff_rows")
    else:
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE __cutoffs AS SELECT DISTINCT {col}, cutoff FROM __cutoff_rows "
            f"WHERE {col} IS NOT NULL AND cutoff IS NOT NULL"
        )
        db.execute("CREATE OR REPLACE TEMP VIEW cutoffs AS SELECT * FROM __cutoffs")
    # Buckets start at the time of day most cutoffs share, so most rows need no partial buckets.
    rid = row_id if by_rows else None
    target = out if row_id is None or by_rows else "__view_rows"
    try:
        if first is None:
            db.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS {view.sql(row_id=rid)}")
        else:
            buckets = None
            if view.is_spec:
                buckets = db.execute(cutoff_buckets_sql(view.entity.column, int(origin))).fetchall()

            def sql(shard: tuple[int, int] | None = None) -> str:
                return view.sql_for(
                    int(first),
                    int(last),
                    int(origin),
                    aligned=aligned,
                    row_id=rid,
                    cutoff_buckets=buckets,
                    shard=shard,
                )

            count = _shard_count(db, view, shards)
            if shards is not None and count > 1:
                _run_sharded(db, shards.connect, count, view.entity.column, sql, target)
            else:
                db.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS {sql()}")
    except duckdb.Error as exc:
        raise _explain(db, view, exc) from None
    columns = db.sql(f"SELECT * FROM {target} LIMIT 0").columns
    missing = [c for c in (view.entity.column, "cutoff") if c not in columns]
    if missing:
        raise FeatureError(
            f"feature view {view.name!r}: its SQL must return the columns {view.entity.column!r} and "
            f"'cutoff' (one row per row of `cutoffs`); it returned {columns}"
        )
    features = [c for c in columns if c not in (view.entity.column, "cutoff", row_id)]
    if row_id is not None and not by_rows:
        picked = ", ".join(f'f."{c}"' for c in features)
        db.execute(
            f'CREATE OR REPLACE TEMP TABLE {out} AS SELECT r."{row_id}", {picked} FROM __cutoff_rows r '
            f"LEFT JOIN __view_rows f ON f.{col} = r.{col} AND f.cutoff = r.cutoff"
        )
    return features


def _shard_count(db: duckdb.DuckDBPyConnection, view: FeatureView, shards: Shards | None) -> int:
    """How many shards to run: 1 unless the view is a spec and keys and label rows hash alike."""
    if shards is None or shards.count < 2 or not view.is_spec:
        return 1
    (key,) = db.sql(f"SELECT ({view.entity.key}) FROM events LIMIT 0").types
    (column,) = db.sql(f'SELECT "{view.entity.column}" FROM cutoffs LIMIT 0').types
    return shards.count if str(key) == str(column) else 1


def _run_sharded(
    db: duckdb.DuckDBPyConnection,
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    count: int,
    column: str,
    sql: Callable[[tuple[int, int]], str],
    target: str,
) -> None:
    """Fill `target` with the rows of `count` shard queries run side by side, one connection each.

    Each label row's shard is computed here, on the column as it is (of the key's type): the trip
    through Arrow to the shards may change a type (a UUID arrives as VARCHAR), never which shard, and
    the entity column gets its own type back in `target`.
    """
    name = f'"{column}"'
    (kind,) = db.sql(f"SELECT {name} FROM cutoffs LIMIT 0").types
    rows = db.sql(f"SELECT *, {shard_of_sql(name, count)} AS __shard FROM cutoffs").to_arrow_table()

    def one(j: int) -> pa.Table:
        with connect() as shard:
            shard.register("__shard_rows", rows)
            mine = f"SELECT * EXCLUDE (__shard) FROM __shard_rows WHERE __shard = {j}"
            shard.execute(f"CREATE TEMP VIEW cutoffs AS {mine}")
            return shard.sql(sql((j, count))).to_arrow_table()

    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="kawa-features") as pool:
        parts = list(pool.map(one, range(count)))
    db.register("__shard_out", pa.concat_tables(parts))
    try:
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE {target} AS "
            f"SELECT * REPLACE (CAST({name} AS {kind}) AS {name}) FROM __shard_out"
        )
    finally:
        db.unregister("__shard_out")


def _explain(db: duckdb.DuckDBPyConnection, view: FeatureView, exc: duckdb.Error) -> FeatureError:
    """A FeatureError that names the SQL fragment DuckDB refused, found by trying each one alone."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if view.is_spec:
        probes = [("the entity key", view.entity.key, f"SELECT ({view.entity.key}) FROM events LIMIT 0")]
        for name, f in view.features.items():
            if f.expr is not None:
                probes.append((f"feature {name!r} expr", f.expr, f"SELECT ({f.expr}) FROM events LIMIT 0"))
            if f.where is not None:
                probes.append(
                    (f"feature {name!r} where", f.where, f"SELECT 1 FROM events WHERE ({f.where}) LIMIT 0")
                )
        for what, fragment, probe in probes:
            try:
                db.execute(probe)
            except duckdb.Error as bad:
                detail = str(bad).strip().splitlines()[0]
                return FeatureError(
                    f"feature view {view.name!r}: {what} `{fragment}` is not valid SQL: {detail}"
                )
    return FeatureError(f"feature view {view.name!r} failed: {first_line}")
