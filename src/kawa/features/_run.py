"""Run a feature view for a set of (entity, cutoff) rows inside one warehouse connection."""

from __future__ import annotations

import duckdb

from kawa.features._compile import DAY_US, cutoff_buckets_sql
from kawa.features.errors import FeatureError
from kawa.features.view import FeatureView


def compute_view(
    db: duckdb.DuckDBPyConnection,
    view: FeatureView,
    cutoffs_sql: str,
    out: str,
    *,
    row_id: str | None = None,
) -> list[str]:
    """Fill temp table `out` with `view`'s features for the rows of `cutoffs_sql`; returns their names.

    `cutoffs_sql` yields the view's entity column and a TIMESTAMPTZ `cutoff`. Without `row_id`, `out`
    gets one row per distinct (entity, cutoff) with the entity column, `cutoff` and the features.
    With `row_id` (a column of `cutoffs_sql`), `out` gets exactly one row per input row: `row_id`
    and the features, rows with a NULL entity or cutoff included.
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
    if first is None:
        sql = view.sql(row_id=rid)
    else:
        buckets = None
        if view.is_spec:
            buckets = db.execute(cutoff_buckets_sql(view.entity.column, int(origin))).fetchall()
        sql = view.sql_for(
            int(first), int(last), int(origin), aligned=aligned, row_id=rid, cutoff_buckets=buckets
        )
    target = out if row_id is None or by_rows else "__view_rows"
    try:
        db.execute(f"CREATE OR REPLACE TEMP TABLE {target} AS {sql}")
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
