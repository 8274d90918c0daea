"""Rows that come back to a notebook: a query's or a training set's (`Result`), a model's predictions
(`Predictions`) and a stored prediction (`StoredPrediction`), each shown as a table in Jupyter.

>>> import pyarrow as pa
>>> result = Result(pa.table({"user_id": ["u_1", "u_2"], "score": [0.25, 0.75]}))
>>> result.shape
(2, 2)
>>> "0.75" in result._repr_html_()
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import pyarrow as pa

from kawa.notebook import _html

PREVIEW_ROWS = 10


class Result:
    """Rows from kawa: `.df()` is a pandas DataFrame, `.pl()` a Polars one, `.arrow()` the Arrow table."""

    def __init__(self, table: pa.Table, *, title: str = "", truncated: bool = False) -> None:
        self._table = table
        self.title = title
        self.truncated = truncated  # more rows matched than came back (the `limit` of a query over HTTP)

    def arrow(self) -> pa.Table:
        return self._table

    def df(self) -> Any:
        """The rows as a pandas DataFrame (needs pandas: `pip install 'kawa[notebook]'`)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("Result.df() needs pandas: pip install 'kawa[notebook]'") from None
        return self._table.to_pandas()

    def pl(self) -> Any:
        """The rows as a Polars DataFrame (needs polars: `pip install 'kawa[notebook]'`)."""
        try:
            import polars
        except ImportError:
            raise ImportError("Result.pl() needs polars: pip install 'kawa[notebook]'") from None
        return polars.from_arrow(self._table)

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts."""
        rows: list[dict[str, Any]] = self._table.to_pylist()
        return rows

    @property
    def columns(self) -> list[str]:
        return list(self._table.column_names)

    @property
    def shape(self) -> tuple[int, int]:
        return self._table.num_rows, self._table.num_columns

    def __len__(self) -> int:
        return self._table.num_rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_pylist())

    def _head(self, n: int = PREVIEW_ROWS) -> list[list[Any]]:
        return [list(r.values()) for r in self._table.slice(0, n).to_pylist()]

    def _summary(self) -> str:
        rows, cols = self.shape
        shown = f"; the first {PREVIEW_ROWS} shown" if rows > PREVIEW_ROWS else ""
        more = "; more rows matched than came back (raise limit=)" if self.truncated else ""
        return f"{rows:,} row{'s' if rows != 1 else ''}, {cols} column{'s' if cols != 1 else ''}{shown}{more}"

    def _title_html(self) -> _html.Html:
        return _html.Html(f"<strong>{escape(self.title)}</strong>" if self.title else "")

    def _repr_html_(self) -> str:
        types = [str(f.type) for f in self._table.schema]
        grid = _html.table(self.columns, self._head(), types=types)
        return _html.block(self._title_html(), grid, f"<small>{escape(self._summary())}</small>")

    def __repr__(self) -> str:
        head = f"{self.title}\n" if self.title else ""
        return f"{head}{_html.text_table(self.columns, self._head())}\n({self._summary()})"


class Predictions(Result):
    """A model's predictions: the rows it was given, with a `prediction` column (a
    `prediction_<class>` column per class for a multi-class model)."""

    def __init__(self, model: str, version: int, rows: pa.Table, values: Sequence[Any]) -> None:
        self.model = model
        self.version = version
        self.values = list(
            values
        )  # a probability or value per row; a dict class -> probability (multi-class)
        super().__init__(_with_predictions(rows, self.values), title=f"{model} v{version}")

    @property
    def value(self) -> Any:
        """The prediction when one row was given."""
        if len(self.values) != 1:
            raise ValueError(
                f"{len(self.values)} rows were predicted; read .values (or .df()) for all of them"
            )
        return self.values[0]


def _with_predictions(rows: pa.Table, values: list[Any]) -> pa.Table:
    if values and all(isinstance(v, dict) for v in values):
        columns = {f"prediction_{k}": [v.get(k) for v in values] for k in values[0]}
    else:
        columns = {"prediction": values}
    for name, column in columns.items():
        free = name
        while free in rows.column_names:
            free += "_"
        rows = rows.append_column(free, pa.array(column, pa.float64()))
    return rows


@dataclass(frozen=True)
class StoredPrediction:
    """The newest prediction of a model for one entity, as the product reads it from the prediction store."""

    model: str
    entity: str
    score: Any
    model_version: int
    computed_at: str
    source: str = "batch"  # batch | realtime
    event_id: str | None = None  # realtime: the event that asked for it
    trigger: str | None = None  # realtime: the trigger that made it

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def _repr_html_(self) -> str:
        title = _html.Html(
            f"prediction of <strong>{escape(self.model)}</strong> for {_html.code(self.entity)}"
        )
        pairs = [(k, v) for k, v in self.to_json().items() if k not in ("model", "entity")]
        return _html.block(title, _html.fields(pairs))
