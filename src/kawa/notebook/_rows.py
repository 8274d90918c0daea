"""What a notebook hands kawa as rows: a dict, a list of dicts, or a table (Arrow, pandas, Polars, Result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

TABLE_KINDS = "a pyarrow Table, a pandas or Polars DataFrame, or a kawa Result"


def is_table(data: Any) -> bool:
    """Whether `data` is a table rather than one row or a list of rows."""
    if isinstance(data, pa.Table | pa.RecordBatch) or hasattr(data, "arrow"):
        return True
    module = type(data).__module__
    return module.startswith(("pandas", "polars")) and hasattr(data, "columns")


def to_arrow(data: Any, what: str = "rows") -> pa.Table:
    """`data` as an Arrow table; a list of dicts becomes one row per dict.

    >>> to_arrow([{"a": 1}, {"a": 2}]).num_rows
    2
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    arrow = getattr(data, "arrow", None)
    if callable(arrow):  # a kawa Result
        table = arrow()
        if isinstance(table, pa.Table):
            return table
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "columns"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if module.startswith("polars") and hasattr(data, "to_arrow"):
        table = data.to_arrow()
        if isinstance(table, pa.Table):
            return table
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        rows = list(data)
        if all(isinstance(r, Mapping) for r in rows):
            return pa.Table.from_pylist([dict(r) for r in rows])
    raise TypeError(f"{what} must be {TABLE_KINDS}, or a list of dicts; got {type(data).__name__}")


def to_rows(data: Any) -> Mapping[str, Any] | list[Mapping[str, Any]]:
    """One row (a dict) or a list of rows, from a dict, a list of dicts or a table."""
    if isinstance(data, Mapping):
        return data
    if is_table(data):
        rows: list[Mapping[str, Any]] = to_arrow(data).to_pylist()
        return rows
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise TypeError(f"row {i} is a {type(row).__name__}, not a dict of column -> value")
        return list(data)
    raise TypeError(
        f"rows must be a dict (one row), a list of dicts, or {TABLE_KINDS}; got {type(data).__name__}"
    )
