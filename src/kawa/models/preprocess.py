"""The preprocessing inside a bundle: learned once from the training table, then applied to whole
tables (vectorised, for batch prediction) and to single JSON rows (a precompiled plan, for serving)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kawa.models.columns import (
    KINDS,
    BooleanColumn,
    CategoricalColumn,
    Column,
    Encoding,
    Fill,
    Kind,
    NumericColumn,
    Unknown,
    infer_kind,
)
from kawa.models.dates import DatetimeColumn
from kawa.models.errors import BundleError, RowError
from kawa.models.images import Image, ImageColumn
from kawa.models.sequences import SequenceColumn, SequenceEncoding
from kawa.models.text import Text, TextColumn

TableLike = Any  # a pyarrow Table or RecordBatch, or a pandas DataFrame
# A column's kind by name, or with its settings: Text(...) for free text, Image(...) for images.
KindSpec = Kind | Text | Image


def as_arrow(table: TableLike) -> pa.Table:
    """`table` as a pyarrow Table (pandas DataFrames are converted, their index dropped)."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if type(table).__module__.startswith("pandas"):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(f"expected a pyarrow Table or a pandas DataFrame, got {type(table).__name__}")


class Preprocessor:
    """Turns human-readable inputs into the float64 feature matrix the estimator was trained on."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self._plan: list[tuple[Column, int]] = []
        offset = 0
        for column in self.columns:
            self._plan.append((column, offset))
            offset += column.width
        self.width = offset
        self._names = tuple(c.name for c in self.columns)

    @classmethod
    def learn(
        cls,
        table: pa.Table,
        *,
        features: Sequence[str],
        kinds: Mapping[str, KindSpec] | None = None,
        encoding: Encoding = "onehot",
        scale: bool = True,
        unknown: Unknown = "missing",
        max_categories: int = 100,
        min_frequency: int = 1,
        sequences: SequenceEncoding = "counts",
        sequence_length: int | None = None,
    ) -> Preprocessor:
        """Learn each feature's encoding from `table`; kinds not given are inferred from Arrow types.

        `max_categories` and `min_frequency` also bound a sequence's vocabulary; `sequences` says
        whether lists become token ids (sequence models) or token counts (any other estimator).
        """
        kinds = dict(kinds or {})
        for name, declared in kinds.items():
            if not isinstance(declared, Text | Image) and declared not in KINDS:
                raise BundleError(f"kind {declared!r} of column {name!r} is not one of {', '.join(KINDS)}")
        columns: list[Column] = []
        for name in features:
            if name not in table.column_names:
                raise BundleError(f"feature {name!r} is not a column of the training table")
            array = table.column(name)
            spec = kinds.get(name) or infer_kind(name, array.type)
            kind: str = spec.kind if isinstance(spec, Text | Image) else spec
            try:
                if kind == "text":
                    columns.append(TextColumn.learn(name, array, spec if isinstance(spec, Text) else Text()))
                elif kind == "image":
                    image = spec if isinstance(spec, Image) else Image()
                    columns.append(ImageColumn.learn(name, array, image))
                elif kind == "numeric":
                    columns.append(NumericColumn.learn(name, array, scale=scale))
                elif kind == "boolean":
                    columns.append(BooleanColumn.learn(name, array, scale=False))
                elif kind == "datetime":
                    columns.append(DatetimeColumn.learn(name, array, scale=scale))
                elif kind == "sequence":
                    columns.append(
                        SequenceColumn.learn(
                            name,
                            array,
                            encoding=sequences,
                            length=sequence_length,
                            max_tokens=max_categories,
                            min_frequency=min_frequency,
                        )
                    )
                else:
                    columns.append(
                        CategoricalColumn.learn(
                            name,
                            array,
                            encoding=encoding,
                            unknown=unknown,
                            max_categories=max_categories,
                            min_frequency=min_frequency,
                        )
                    )
            except RowError as exc:
                raise BundleError(f"cannot use training column {name!r} as {kind}: {exc.problem}") from None
        return cls(columns)

    @property
    def feature_names(self) -> list[str]:
        return [name for c in self.columns for name in c.feature_names]

    @property
    def ordinal_slots(self) -> list[int]:
        """Positions of ordinal-coded categories, for estimators that treat them natively (LightGBM)."""
        return [
            offset
            for column, offset in self._plan
            if isinstance(column, CategoricalColumn) and column.encoding == "ordinal"
        ]

    @property
    def sequence_slots(self) -> list[tuple[int, int, int]]:
        """(offset, length, vocabulary size) of each sequence coded as token ids, for sequence models."""
        return [
            (offset, column.length, column.vocabulary_size)
            for column, offset in self._plan
            if isinstance(column, SequenceColumn) and column.encoding == "ids"
        ]

    def transform_table(self, table: pa.Table) -> np.ndarray:
        """The feature matrix of every row of `table` (extra columns are ignored)."""
        out = np.zeros((table.num_rows, self.width), dtype=np.float64)
        present = set(table.column_names)
        for column, offset in self._plan:
            if column.name not in present:
                raise RowError(
                    column.name, f"is missing from the table; the model needs {', '.join(self._names)}"
                )
            column.encode_array(table.column(column.name), out, offset)
        return out

    def transform_row(self, row: Mapping[str, Any], out: np.ndarray | None = None) -> np.ndarray:
        """The feature vector of one row (a dict of field -> JSON value; extra fields are ignored)."""
        if out is None:
            out = np.zeros(self.width, dtype=np.float64)
        if not isinstance(row, Mapping):
            raise RowError(None, f"a row must be a JSON object of field -> value; got {type(row).__name__}")
        for column, offset in self._plan:
            try:
                value = row[column.name]
            except KeyError:
                raise RowError(column.name, f"is missing; expected {column.expected} (or null)") from None
            column.encode_value(value, out, offset)
        return out

    def transform_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The feature matrix of a list of rows; a RowError says which row."""
        out = np.zeros((len(rows), self.width), dtype=np.float64)
        for i, row in enumerate(rows):
            try:
                self.transform_row(row, out[i])
            except RowError as exc:
                raise exc.at(i) from None
        return out

    def signature(self) -> list[dict[str, Any]]:
        """The inputs a row must have, one entry per field."""
        return [c.describe() for c in self.columns]

    def example(self) -> dict[str, Any]:
        """A typical row, built from training medians and most frequent categories."""
        return {c.name: c.example() for c in self.columns}

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.columns]

    @classmethod
    def from_json(cls, data: Any) -> Preprocessor:
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise BundleError("malformed bundle.json: 'columns' must be a list of objects")
        return cls([column_from_json(d) for d in data])


def column_from_json(data: dict[str, Any]) -> Column:
    """The column described by `to_json` output; BundleError if the description is malformed."""
    try:
        kind, name = data["kind"], data["name"]
        if kind in ("numeric", "boolean"):
            cls = NumericColumn if kind == "numeric" else BooleanColumn
            return cls(name, Fill(*map(float, data["fill"])), bool(data["indicator"]))
        if kind == "categorical":
            if data["encoding"] not in ("onehot", "ordinal") or data["unknown"] not in ("missing", "error"):
                raise ValueError("bad encoding or unknown policy")
            categories = list(data["categories"])
            if not all(type(c) in (str, int) for c in categories):
                raise ValueError("categories must be strings or integers")
            return CategoricalColumn(name, categories, encoding=data["encoding"], unknown=data["unknown"])
        if kind == "datetime":
            fills = [Fill(*map(float, f)) for f in data["fills"]]
            if len(fills) != len(DatetimeColumn.PARTS):
                raise ValueError("wrong number of date parts")
            return DatetimeColumn(name, fills, bool(data["indicator"]))
        if kind == "sequence":
            tokens, length = list(data["tokens"]), data["length"]
            if data["encoding"] not in ("ids", "counts") or type(length) is not int or length < 1:
                raise ValueError("bad encoding or length")
            if not all(type(t) is str for t in tokens):
                raise ValueError("tokens must be strings")
            return SequenceColumn(name, tokens, length, data["encoding"])
        if kind == "text":
            return TextColumn.from_json(data)
        if kind == "image":
            return ImageColumn.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed column in bundle.json ({exc}): {str(data)[:200]}") from None
    raise BundleError(f"unknown column kind {kind!r} in bundle.json; expected one of {', '.join(KINDS)}")
