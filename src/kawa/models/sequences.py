"""Sequence input columns: a list of strings (the pages of a session, the items of a basket) becomes
token ids for a sequence model, or token counts (a bag of tokens) for any other estimator.

The vocabulary is learned at fit, most frequent token first. Ids: 0 pads, 1 is a token unseen in
training (or null), the vocabulary starts at 2. Only the last `length` tokens of a list are kept: in
"ids" encoding they fill the `length` slots right-aligned (the newest token always in the last slot,
padding before it); in "counts" encoding each kept token adds 1 to its token's slot.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.columns import Array, Column, is_sequence_type, show_value, to_numpy
from kawa.models.errors import RowError

SequenceEncoding = Literal["ids", "counts"]
PAD, UNKNOWN, FIRST_TOKEN = 0, 1, 2
# The longest sequence kept when `sequence_length` is not given: the longest training list, up to this.
MAX_DEFAULT_LENGTH = 50


class SequenceColumn(Column):
    """A list of strings: the last `length` tokens as vocabulary ids, or as counts per token."""

    kind = "sequence"
    json_type = "array"
    expected = "a list of strings"

    def __init__(self, name: str, tokens: list[str], length: int, encoding: SequenceEncoding = "ids") -> None:
        super().__init__(name)
        if length < 1:
            raise ValueError(f"a sequence length must be at least 1; got {length}")
        self.tokens = tokens
        self.length = length
        self.encoding: SequenceEncoding = encoding
        self._index = {t: i + FIRST_TOKEN for i, t in enumerate(tokens)}
        self._value_set = pa.array(tokens, pa.string())

    @classmethod
    def learn(
        cls,
        name: str,
        array: Array,
        *,
        encoding: SequenceEncoding,
        length: int | None,
        max_tokens: int,
        min_frequency: int,
    ) -> SequenceColumn:
        """The vocabulary (the `max_tokens` most frequent tokens seen `min_frequency` times) and length."""
        lists = _lists(name, array)
        flat = pc.list_flatten(lists)
        counts = pc.value_counts(flat)
        pairs = [
            (int(c), v)
            for v, c in zip(
                counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
            )
            if v is not None and c >= min_frequency
        ]
        pairs.sort(key=lambda p: (-p[0], p[1]))  # most frequent first; ties by token, so fits repeat
        if length is None:
            longest = pc.max(pc.list_value_length(lists)).as_py() or 1
            length = min(int(longest), MAX_DEFAULT_LENGTH)
        return cls(name, [v for _, v in pairs[:max_tokens]], length, encoding)

    @property
    def vocabulary_size(self) -> int:
        """How many ids there are: padding, unknown and the tokens."""
        return len(self.tokens) + FIRST_TOKEN

    @property
    def feature_names(self) -> list[str]:
        if self.encoding == "ids":
            return [f"{self.name}[{i - self.length}]" for i in range(self.length)]  # [-N] .. [-1]
        return [f"{self.name}={t}" for t in self.tokens] + [f"{self.name}=unknown"]

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        lists = _lists(self.name, array)
        chunks = lists.chunks if isinstance(lists, pa.ChunkedArray) else [lists]
        start = 0
        for chunk in chunks:
            self._encode_chunk(chunk, out[start : start + len(chunk)], offset)
            start += len(chunk)

    def _encode_chunk(self, lists: pa.Array, out: np.ndarray, offset: int) -> None:
        flat = pc.list_flatten(lists)
        if len(flat) == 0:
            return
        rows = to_numpy(pc.list_parent_indices(lists)).astype(np.int64)
        lengths = to_numpy(pc.fill_null(pc.list_value_length(lists), 0)).astype(np.int64)
        ends = np.cumsum(lengths)  # one past each row's last token in `flat`
        from_end = ends[rows] - 1 - np.arange(len(flat))  # 0 for the newest token of each row
        codes = to_numpy(pc.fill_null(pc.index_in(flat, value_set=self._value_set), -1)).astype(np.int64)
        keep = from_end < self.length
        rows, from_end, ids = rows[keep], from_end[keep], codes[keep] + FIRST_TOKEN  # unknown -> 1
        if self.encoding == "ids":
            out[rows, offset + self.length - 1 - from_end] = ids
        else:
            width = len(self.tokens) + 1
            slots = np.where(ids == UNKNOWN, len(self.tokens), ids - FIRST_TOKEN)
            counts = np.bincount(rows * width + slots, minlength=len(out) * width)
            out[:, offset : offset + width] += counts.reshape(len(out), width)

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is None:
            return
        kind = type(value)
        if kind is not list and kind is not tuple:
            raise self.wrong_type(value)
        kept = value[-self.length :]
        index = self._index
        ids = self.encoding == "ids"
        first = offset + self.length - len(kept)
        for j, token in enumerate(kept):
            code = index.get(token, UNKNOWN) if type(token) is str else UNKNOWN
            if code == UNKNOWN and token is not None and type(token) is not str:
                position = len(value) - len(kept) + j
                raise RowError(
                    self.name, f"must be a list of strings; item {position} is {show_value(token)}"
                )
            if ids:
                out[first + j] = code
            else:
                out[offset + (code - FIRST_TOKEN if code != UNKNOWN else len(self.tokens))] += 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "tokens": self.tokens,
            "length": self.length,
            "encoding": self.encoding,
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "items": "string", "length": self.length, "tokens": self.tokens}

    def example(self) -> Any:
        return self.tokens[:3]


def _lists(name: str, array: Array) -> Array:
    """A column of lists of strings (null lists allowed); RowError for other types."""
    t = array.type
    if pa.types.is_null(t):
        return pc.cast(array, pa.list_(pa.string()))
    if not is_sequence_type(t):
        raise RowError(name, f"must hold lists of strings (a sequence); got a column of type {t}")
    if not pa.types.is_list(t) or not pa.types.is_string(t.value_type):
        return pc.cast(array, pa.list_(pa.string()))
    return array
