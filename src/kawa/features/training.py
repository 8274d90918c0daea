"""Point-in-time correct training sets: label rows joined to the features known at each row's cutoff."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from kawa.features._run import compute_view, shards_of
from kawa.features._time import utc_column
from kawa.features.errors import FeatureError
from kawa.features.label import Label
from kawa.features.view import FeatureView
from kawa.warehouse import Warehouse

_ROW = "__kawa_row"


def training_set(warehouse: Warehouse, labels: Label | pa.Table, views: Sequence[FeatureView]) -> pa.Table:
    """Every label row, in order, with the features of `views` computed from events before its cutoff.

    `labels` is a Label (run on the warehouse) or an Arrow table with a `cutoff` column (timestamps,
    dates meaning midnight UTC, or ISO strings) and each view's entity column (`user_id` for users).
    An event at exactly the cutoff is not used. No row is dropped: where an entity has no earlier
    events, counts, sums and distinct counts are 0 and every other feature is NULL.
    """
    table = labels.rows(warehouse) if isinstance(labels, Label) else labels
    if not isinstance(table, pa.Table):
        raise FeatureError(f"labels must be a Label or a pyarrow.Table, not {type(table).__name__}")
    views = list(views)
    _check_columns(table, views)
    table = utc_column(table, "cutoff")
    table = table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    taken = {c: "the label rows" for c in table.column_names}
    with warehouse.connect() as db:
        db.register("__label_rows", table)
        for i, view in enumerate(views):
            column = view.entity.column
            out = f"__features_{i}"
            names = compute_view(
                db,
                view,
                f'SELECT "{column}", cutoff, {_ROW} FROM __label_rows',
                out,
                row_id=_ROW,
                shards=shards_of(warehouse),
            )
            selects = []
            for name in names:
                if name in taken:
                    raise FeatureError(
                        f"column {name!r} of feature view {view.name!r} is also in {taken[name]}; "
                        "rename one of them"
                    )
                taken[name] = f"feature view {view.name!r}"
                feature = view.features.get(name)
                empty = None if feature is None else feature.empty
                selects.append(f'"{name}"' if empty is None else f'coalesce("{name}", {empty}) AS "{name}"')
            # One feature row per label row: put them in label order and attach them side by side.
            found = db.sql(f"SELECT {', '.join(selects)} FROM {out} ORDER BY {_ROW}").to_arrow_table()
            if found.num_rows != table.num_rows:
                raise FeatureError(
                    f"feature view {view.name!r} returned {found.num_rows} rows "
                    f"for {table.num_rows} label rows"
                )
            for name in names:
                table = table.append_column(name, found.column(name))
    return table.drop_columns([_ROW])


def _check_columns(table: pa.Table, views: list[FeatureView]) -> None:
    for view in views:
        if not isinstance(view, FeatureView):
            raise FeatureError(f"views must be FeatureView objects, not {type(view).__name__}")
        if view.entity.column not in table.column_names:
            raise FeatureError(
                f"feature view {view.name!r} is keyed by {view.entity.name} but the label rows have no "
                f"{view.entity.column!r} column (they have {table.column_names})"
            )
    if "cutoff" not in table.column_names:
        raise FeatureError(f"label rows need a 'cutoff' column; they have {table.column_names}")
