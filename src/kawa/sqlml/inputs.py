"""How a query's result becomes a SQL model's input: DATE and TIMESTAMP columns count days since
1970-01-01 (a single number, so k-means distances and linear weights mean something), and columns of
a type no model can use are refused by name.

>>> import datetime as dt
>>> as_inputs(pa.table({"d": [dt.date(1970, 1, 11)]}), ["d"]).column("d").to_pylist()
[10.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.columns import is_sequence_type
from kawa.sqlml.errors import SQLModelError

MICROS_PER_DAY = 86_400_000_000
# The Arrow types a model input may have: numbers, booleans, text, dates and times, lists of text.
_TAKES = (
    pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean, pa.types.is_string,
    pa.types.is_large_string, pa.types.is_dictionary, pa.types.is_date, pa.types.is_timestamp,
    is_sequence_type,
)  # fmt: skip


def as_inputs(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """`table` with each of `columns` that holds dates or times turned into days since 1970 (float)."""
    for name in columns:
        index = table.schema.get_field_index(name)
        array = table.column(index)
        if pa.types.is_date(array.type) or pa.types.is_timestamp(array.type):
            table = table.set_column(index, name, _days(array))
    return table


def check_types(table: pa.Table, columns: Sequence[str], where: str) -> None:
    """SQLModelError naming the first of `columns` whose type no model can take, and what to do."""
    for name in columns:
        t = table.schema.field(name).type
        if not any(takes(t) for takes in _TAKES):
            raise SQLModelError(
                f"{where}: column {name!r} has type {t}, which a model cannot take; turn it into a number, "
                f"text, boolean or date in the query (e.g. CAST({name} AS DOUBLE)) or leave it out"
            )


def find_column(table: pa.Table, name: str) -> str | None:
    """The column of `table` called `name`, ignoring case as SQL does; None if there is none."""
    if name in table.column_names:
        return name
    folded = [c for c in table.column_names if c.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _days(array: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_date(array.type):
        micros = pc.cast(pc.cast(array, pa.timestamp("us")), pa.int64())
    else:
        micros = pc.cast(pc.cast(array, pa.timestamp("us", array.type.tz)), pa.int64())
    return pc.divide(pc.cast(micros, pa.float64()), float(MICROS_PER_DAY))
