"""Text input columns: free text (an item title, a description) becomes TF-IDF weights of character n-grams.

The vocabulary (the `max_features` most frequent n-grams) and each n-gram's inverse document frequency
are learned at fit with scikit-learn's `TfidfVectorizer`; the bundle keeps them as JSON and weighs new
text the same way: sublinear term frequency (1 + log count) times idf, scaled to unit length. Character
n-grams inside word boundaries ("char_wb") match re-listed titles whose words were shuffled, recoloured
or misspelt, which word counts miss.

>>> import pyarrow as pa
>>> column = TextColumn.learn("title", pa.array(["Red Shoe", "Blue Shoe", None]), Text(max_features=8))
>>> len(column.feature_names), column.feature_names[0]
(8, "title~' s'")
>>> round(float(sum(v * v for v in column.vector("red shoe").values())), 6)  # unit length
1.0
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.columns import Array, Column
from kawa.models.errors import RowError

Analyzer = Literal["char_wb", "char", "word"]


@dataclass(frozen=True)
class Text:
    """How a text input is weighed: `kinds={"title": Text(ngrams=(2, 4))}`, or `kinds={"title": "text"}`
    for these defaults. Each of the `max_features` n-grams is one slot of the feature matrix."""

    kind: ClassVar[str] = "text"
    ngrams: tuple[int, int] = (2, 4)
    max_features: int = 500
    analyzer: Analyzer = "char_wb"
    lowercase: bool = True

    def __post_init__(self) -> None:
        low, high = self.ngrams
        if not (type(low) is int and type(high) is int and 1 <= low <= high <= 10):
            raise ValueError(f"ngrams={self.ngrams!r}: use (low, high) with 1 <= low <= high <= 10")
        if type(self.max_features) is not int or not 1 <= self.max_features <= 100_000:
            raise ValueError(f"max_features={self.max_features!r}: use a whole number from 1 to 100,000")
        if self.analyzer not in ("char_wb", "char", "word"):
            raise ValueError(f"analyzer={self.analyzer!r}: use 'char_wb', 'char' or 'word'")


class TextColumn(Column):
    """Free text as TF-IDF weights of the n-grams learned at fit; null or empty text is all zeros."""

    kind = "text"
    json_type = "string"
    expected = "a string (free text)"

    def __init__(self, name: str, spec: Text, terms: list[str], idf: list[float], example: str = "") -> None:
        super().__init__(name)
        if len(terms) != len(idf):
            raise ValueError(f"{len(terms)} terms but {len(idf)} idf weights")
        self.spec = spec
        self.terms = terms
        self.idf = idf
        self.example_text = example
        self._index = {t: i for i, t in enumerate(terms)}
        self._analyze: Callable[[str], list[str]] = _vectorizer(spec).build_analyzer()

    @classmethod
    def learn(cls, name: str, array: Array, spec: Text) -> TextColumn:
        """The n-gram vocabulary and idf weights of the training texts (nulls count as empty texts)."""
        texts = _texts(name, array)
        vectorizer = _vectorizer(spec)
        try:
            vectorizer.fit(texts)
        except ValueError:  # every text empty: nothing to learn, the column is all zeros
            return cls(name, spec, [], [], "")
        terms = vectorizer.get_feature_names_out().tolist()
        example = next((t for t in texts if t), "")[:200]
        return cls(name, spec, terms, [float(v) for v in vectorizer.idf_], example)

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}~{t!r}" for t in self.terms]

    def vector(self, text: str) -> dict[int, float]:
        """The non-zero slots of `text`: slot -> TF-IDF weight (unit length over all slots)."""
        index = self._index
        counts = Counter(i for gram in self._analyze(text) if (i := index.get(gram)) is not None)
        weights = {i: (1.0 + math.log(n)) * self.idf[i] for i, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {i: w / norm for i, w in weights.items()} if norm > 0 else {}

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        for row, text in enumerate(_texts(self.name, array)):
            for i, weight in self.vector(text).items():
                out[row, offset + i] = weight

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is None:
            return
        if type(value) is not str:
            raise self.wrong_type(value)
        for i, weight in self.vector(value).items():
            out[offset + i] = weight

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "ngrams": list(self.spec.ngrams),
            "analyzer": self.spec.analyzer,
            "lowercase": self.spec.lowercase,
            "terms": self.terms,
            "idf": self.idf,
            "example": self.example_text,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextColumn:
        """The column `to_json` described (KeyError, TypeError or ValueError if it is malformed)."""
        terms, idf = list(data["terms"]), [float(v) for v in data["idf"]]
        if not all(type(t) is str for t in terms):
            raise ValueError("terms must be strings")
        low, high = data["ngrams"]
        spec = Text(
            ngrams=(low, high),
            max_features=max(len(terms), 1),
            analyzer=data["analyzer"],
            lowercase=bool(data["lowercase"]),
        )
        return cls(data["name"], spec, terms, idf, str(data.get("example") or ""))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "analyzer": self.spec.analyzer,
            "ngrams": list(self.spec.ngrams),
            "terms": len(self.terms),
        }

    def example(self) -> Any:
        return self.example_text


def _vectorizer(spec: Text) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer=spec.analyzer,
        ngram_range=spec.ngrams,
        max_features=spec.max_features,
        lowercase=spec.lowercase,
        sublinear_tf=True,
        dtype=np.float64,
    )


def _texts(name: str, array: Array) -> list[str]:
    """The column's values as strings, nulls as empty text; RowError if it does not hold text."""
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = pc.cast(array, t.value_type), t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
        raise RowError(name, f"must hold text; got a column of type {t}")
    return [v or "" for v in pc.cast(array, pa.string()).to_pylist()]
