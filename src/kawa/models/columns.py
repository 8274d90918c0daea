"""Input columns: how one human-readable field becomes numbers, learned from the training table.
Date-times live in `dates.py`, lists of strings (sequences) in `sequences.py`, free text in `text.py`,
images in `images.py`.

Each column encodes a whole Arrow column at once (`encode_array`, for batch prediction) and one JSON
value (`encode_value`, for the single-row path); both write into the same slots of a float64 matrix
and agree on every value. What a column learned is plain JSON (`to_json`, read back by
`preprocess.column_from_json`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.errors import BundleError, RowError

Kind = Literal["numeric", "categorical", "boolean", "datetime", "sequence", "text", "image"]
KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime", "sequence", "text", "image")
Encoding = Literal["onehot", "ordinal"]
Unknown = Literal["missing", "error"]

Array: TypeAlias = pa.Array | pa.ChunkedArray


def infer_kind(name: str, type_: pa.DataType) -> Kind:
    """The kind of a column from its Arrow type; BundleError for types kawa cannot encode."""
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_dictionary(type_):
        return "categorical"
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        return "datetime"
    if is_sequence_type(type_):
        return "sequence"
    raise BundleError(
        f"column {name!r} has type {type_}, which kawa cannot encode; declare its kind "
        f"(kinds={{{name!r}: 'categorical'}}) or leave it out (features=[...])"
    )


def is_sequence_type(type_: pa.DataType) -> bool:
    """Whether an Arrow type holds lists of strings (the "sequence" kind)."""
    if not (pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_)):
        return False
    value = type_.value_type
    return pa.types.is_string(value) or pa.types.is_large_string(value) or pa.types.is_null(value)


class Fill:
    """Median imputation and optional standardisation of one numeric feature."""

    __slots__ = ("fill", "mean", "median", "std")

    def __init__(self, median: float, mean: float = 0.0, std: float = 1.0) -> None:
        self.median = median
        self.mean = mean
        self.std = std
        self.fill = (median - mean) / std  # what a missing value encodes to

    @classmethod
    def learn(cls, values: np.ndarray, scale: bool) -> Fill:
        present = values[~np.isnan(values)]
        median = float(np.median(present)) if present.size else 0.0
        if not scale:
            return cls(median)
        filled = np.where(np.isnan(values), median, values)
        mean, std = float(filled.mean()), float(filled.std())
        return cls(median, mean, std if std > 0 and math.isfinite(std) else 1.0)

    def column(self, values: np.ndarray) -> np.ndarray:
        encoded = (values - self.mean) / self.std
        encoded[np.isnan(values)] = self.fill
        return encoded

    def value(self, v: float) -> float:
        return (v - self.mean) / self.std

    def to_json(self) -> list[float]:
        return [self.median, self.mean, self.std]


class Column(ABC):
    """One input field: what it accepts, and the slots it fills in the feature matrix."""

    kind: ClassVar[str]
    json_type: ClassVar[str]  # the JSON type of a value, for the signature
    expected: ClassVar[str]  # what a row value must be, for error messages

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    @abstractmethod
    def feature_names(self) -> list[str]:
        """Names of the slots this column fills, in order."""

    @property
    def width(self) -> int:
        return len(self.feature_names)

    @abstractmethod
    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        """Write the encoding of a whole column into `out[:, offset:offset + width]` (zeros before)."""

    @abstractmethod
    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        """Write the encoding of one row's value into `out[offset:offset + width]` (zeros before)."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """What this column learned, as JSON."""

    @abstractmethod
    def example(self) -> Any:
        """A typical value, for documentation and `kawa models show`."""

    def describe(self) -> dict[str, Any]:
        """This column's entry in the model's input signature."""
        return {"name": self.name, "kind": self.kind, "type": self.json_type, "nullable": True}

    def wrong_type(self, value: Any) -> RowError:
        return RowError(self.name, f"must be {self.expected} or null; got {show_value(value)}")


class NumericColumn(Column):
    """A number: missing values become the training median (plus a 0/1 indicator slot if training
    data had any), then optionally standardised."""

    kind = "numeric"
    json_type = "number"
    expected = "a number"

    def __init__(self, name: str, fill: Fill, indicator: bool) -> None:
        super().__init__(name)
        self.fill = fill
        self.indicator = indicator

    @classmethod
    def learn(cls, name: str, array: Array, *, scale: bool) -> NumericColumn:
        values = cls.floats(name, array)
        return cls(name, Fill.learn(values, scale), bool(np.isnan(values).any()))

    @property
    def feature_names(self) -> list[str]:
        return [self.name, f"{self.name}=missing"] if self.indicator else [self.name]

    @classmethod
    def floats(cls, name: str, array: Array) -> np.ndarray:
        """The column as float64 with NaN for nulls; RowError if it does not hold numbers."""
        t = array.type
        if not (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_decimal(t)
            or pa.types.is_boolean(t)
            or pa.types.is_null(t)
        ):
            raise RowError(name, f"must hold numbers; got a column of type {t}")
        return to_numpy(pc.fill_null(pc.cast(array, pa.float64()), np.nan))

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        values = self.floats(self.name, array)
        out[:, offset] = self.fill.column(values)
        if self.indicator:
            out[:, offset + 1] = np.isnan(values)

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        kind = type(value)
        if kind is float or kind is int:
            v = float(value)
        elif value is None:
            v = math.nan
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            v = float(value)
        else:
            raise self.wrong_type(value)
        if v != v:  # NaN
            out[offset] = self.fill.fill
            if self.indicator:
                out[offset + 1] = 1.0
        else:
            out[offset] = self.fill.value(v)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "fill": self.fill.to_json(),
            "indicator": self.indicator,
        }

    def example(self) -> Any:
        return self.fill.median


class BooleanColumn(NumericColumn):
    """true/false as 1/0; missing values become the training median (the more common value)."""

    kind = "boolean"
    json_type = "boolean"
    expected = "true or false"

    @classmethod
    def learn(cls, name: str, array: Array, *, scale: bool) -> NumericColumn:
        return super().learn(name, array, scale=False)

    @classmethod
    def floats(cls, name: str, array: Array) -> np.ndarray:
        if not (pa.types.is_boolean(array.type) or pa.types.is_null(array.type)):
            raise RowError(name, f"must hold true/false values; got a column of type {array.type}")
        return super().floats(name, array)

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is not None and type(value) is not bool:
            raise self.wrong_type(value)
        super().encode_value(None if value is None else float(value), out, offset)

    def example(self) -> Any:
        return self.fill.median >= 0.5


class CategoricalColumn(Column):
    """A category: one-hot (plus a `missing` slot) or an ordinal code (-1 for missing), for trees.

    Nulls, categories unseen in training and categories cut by `max_categories` are all "missing";
    with `unknown="error"` an unseen non-null category is a RowError instead.
    """

    kind = "categorical"

    def __init__(
        self, name: str, categories: list[Any], *, encoding: Encoding = "onehot", unknown: Unknown = "missing"
    ) -> None:
        super().__init__(name)
        self.categories = categories
        self.integer = bool(categories) and all(type(c) is int for c in categories)
        self.encoding = encoding
        self.unknown = unknown
        self._index = {c: i for i, c in enumerate(categories)}
        self._value_set = pa.array(categories, pa.int64() if self.integer else pa.string())

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "an integer category" if self.integer else "a string"

    @property
    def json_type(self) -> str:  # type: ignore[override]
        return "integer" if self.integer else "string"

    @classmethod
    def learn(
        cls,
        name: str,
        array: Array,
        *,
        encoding: Encoding,
        unknown: Unknown,
        max_categories: int,
        min_frequency: int,
    ) -> CategoricalColumn:
        values = _categorical_values(name, array, integer=None)
        counts = pc.value_counts(values)
        pairs = [
            (int(c), v)
            for v, c in zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            )
            if v is not None and c >= min_frequency
        ]
        pairs.sort(key=lambda p: (-p[0], p[1]))  # most frequent first; ties by value, so fits repeat
        return cls(name, [v for _, v in pairs[:max_categories]], encoding=encoding, unknown=unknown)

    @property
    def feature_names(self) -> list[str]:
        if self.encoding == "ordinal":
            return [self.name]
        return [f"{self.name}={c}" for c in self.categories] + [f"{self.name}=missing"]

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        values = _categorical_values(self.name, array, integer=self.integer)
        codes = pc.index_in(values, value_set=self._value_set)
        if self.unknown == "error":
            bad = pc.and_(pc.is_null(codes), pc.is_valid(values))
            if pc.any(bad).as_py():
                row = pc.index(bad, True).as_py()
                raise self.unknown_category(values[row].as_py()).at(row)
        code = to_numpy(pc.fill_null(codes, -1)).astype(np.int64)
        if self.encoding == "ordinal":
            out[:, offset] = code
        else:
            code[code < 0] = len(self.categories)
            out[np.arange(len(code)), offset + code] = 1.0

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is None:
            code = -1
        elif type(value) is (int if self.integer else str):
            code = self._index.get(value, -1)
            if code < 0 and self.unknown == "error":
                raise self.unknown_category(value)
        else:
            raise self.wrong_type(value)
        if self.encoding == "ordinal":
            out[offset] = code
        else:
            out[offset + (code if code >= 0 else len(self.categories))] = 1.0

    def unknown_category(self, value: Any) -> RowError:
        shown = ", ".join(repr(c) for c in self.categories[:10])
        more = f" and {len(self.categories) - 10} more" if len(self.categories) > 10 else ""
        return RowError(self.name, f"has unknown category {value!r}; expected one of {shown}{more}, or null")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "categories": self.categories,
            "encoding": self.encoding,
            "unknown": self.unknown,
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "categories": self.categories, "unknown": self.unknown}

    def example(self) -> Any:
        return self.categories[0] if self.categories else None


def to_numpy(array: Array) -> np.ndarray:
    """An Arrow array or chunked array as one numpy array (copied where it must be)."""
    if isinstance(array, pa.ChunkedArray):
        return array.to_numpy()
    return array.to_numpy(zero_copy_only=False)


def show_value(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _categorical_values(name: str, array: Array, *, integer: bool | None) -> Array:
    """Category values as int64 or string (dictionaries decoded); RowError for other types."""
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = pc.cast(array, t.value_type), t.value_type
    if pa.types.is_null(t):
        return pc.cast(array, pa.int64() if integer else pa.string())
    if pa.types.is_integer(t) and integer is not False:
        return pc.cast(array, pa.int64())
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and not integer:
        return pc.cast(array, pa.string())
    wanted = "integers" if integer else "text" if integer is False else "text or integers"
    raise RowError(name, f"must hold {wanted} (categories); got a column of type {t}")
