"""Materialisation: the latest feature values per entity, written to the online store for serving.

Values are computed by the same SQL as training sets, with every entity's cutoff set to `as_of`, so
the online value equals the offline one at that moment. Each entity's value is one JSON object,
{feature: value, ..., "_as_of": "<ISO time>"}, under the namespace `features/<project>/<view>`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa

from kawa.features._run import compute_view, shards_of
from kawa.features._time import Instant, cutoff_array, to_datetime
from kawa.features.view import FeatureView
from kawa.stores.online import OnlineStore
from kawa.warehouse import Warehouse

AS_OF = "_as_of"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def namespace(project: str, view: str) -> str:
    """The online store namespace of a view's values.

    >>> namespace("shop", "rfm")
    'features/shop/rfm'
    """
    return f"features/{project}/{view}"


def materialize(
    warehouse: Warehouse,
    online_store: OnlineStore,
    views: Sequence[FeatureView],
    *,
    as_of: Instant | None = None,
    batch_size: int = 10_000,
) -> dict[str, int]:
    """Write each view's values at `as_of` (default now) for every entity seen before it; returns counts."""
    when = to_datetime(as_of) if as_of is not None else datetime.now(UTC)
    stamp = when.isoformat().replace("+00:00", "Z")
    counts: dict[str, int] = {}
    for view in views:
        table = _latest(warehouse, view, when)
        ns = namespace(warehouse.project, view.name)
        written = 0
        for items in _batches(table, view.entity.column, stamp, batch_size):
            online_store.put_many(ns, items)
            written += len(items)
        counts[view.name] = written
    return counts


def online_features(
    online_store: OnlineStore, project: str, view: FeatureView | str, entity_id: str
) -> dict[str, Any] | None:
    """The materialised features of one entity (with `_as_of`), or None if it has none."""
    name = view.name if isinstance(view, FeatureView) else view
    raw = online_store.get(namespace(project, name), str(entity_id))
    return None if raw is None else _decode(raw)


def _latest(warehouse: Warehouse, view: FeatureView, when: datetime) -> pa.Table:
    """The view's values at cutoff `when` for every entity with an event before it."""
    key, column = view.entity.key, view.entity.column
    with warehouse.connect() as db:
        db.register("__as_of", pa.table({"cutoff": cutoff_array([when])}))
        cutoffs = (
            f'SELECT DISTINCT ({key}) AS "{column}", a.cutoff FROM events, __as_of a '
            f"WHERE ({key}) IS NOT NULL AND events.sync_date < a.cutoff"
        )
        compute_view(db, view, cutoffs, "__latest", shards=shards_of(warehouse))
        return db.sql('SELECT * EXCLUDE (cutoff) FROM __latest ORDER BY "' + column + '"').to_arrow_table()


def _batches(table: pa.Table, column: str, stamp: str, size: int) -> Iterator[list[tuple[str, bytes]]]:
    """(entity id, JSON value) pairs, `size` at a time, read column by column to stay fast."""
    names = [c for c in table.column_names if c != column]
    for batch in table.to_batches(max_chunksize=size):
        ids = batch.column(column).to_pylist()
        values = [batch.column(name).to_pylist() for name in names]
        items = []
        for i, entity in enumerate(ids):
            row: dict[str, Any] = {name: _plain(vals[i]) for name, vals in zip(names, values, strict=True)}
            row[AS_OF] = stamp
            items.append((str(entity), _encode(row)))
        if items:
            yield items


def _plain(value: Any) -> Any:
    """A value for JSON: times as ISO strings, decimals as numbers, everything else as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
