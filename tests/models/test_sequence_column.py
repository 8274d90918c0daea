"""Sequence columns: a list of strings becomes token ids or token counts, the same way for a whole table
and for one JSON row, and a bag of tokens feeds any estimator."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, BundleError, RowError
from kawa.models.preprocess import Preprocessor, column_from_json
from kawa.models.sequences import SequenceColumn

LISTS = [
    ["home", "item", "item", "cart"],
    [],
    None,
    ["item", None, "nowhere"],
    ["home"] * 7 + ["checkout"],
    ["reviews", "item"],
]


def _column(encoding: str, length: int = 4) -> SequenceColumn:
    return SequenceColumn.learn(
        "pages", pa.array(LISTS), encoding=encoding, length=length, max_tokens=5, min_frequency=1
    )  # type: ignore[arg-type]


def test_the_vocabulary_is_learned_most_frequent_first() -> None:
    column = _column("ids")
    # home 8, item 4, then the ties in token order; "reviews" falls off at max_tokens=5.
    assert column.tokens == ["home", "item", "cart", "checkout", "nowhere"]
    assert column.vocabulary_size == 7  # padding 0, unknown 1, five tokens
    rare = SequenceColumn.learn(
        "pages", pa.array(LISTS), encoding="ids", length=None, max_tokens=100, min_frequency=2
    )
    assert rare.tokens == ["home", "item"]
    assert rare.length == 8  # the longest training list


def test_ids_keep_the_last_tokens_right_aligned_with_padding_and_unknowns() -> None:
    column = _column("ids")
    out = np.zeros((len(LISTS), 4))
    column.encode_array(pa.array(LISTS), out, 0)
    home, item, cart, checkout, nowhere = 2, 3, 4, 5, 6
    assert out.tolist() == [
        [home, item, item, cart],
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [0, item, 1, nowhere],  # null token -> unknown (1)
        [home, home, home, checkout],  # the last 4 of 8
        [0, 0, 1, item],  # "reviews" was cut from the vocabulary -> unknown
    ]
    assert column.feature_names == ["pages[-4]", "pages[-3]", "pages[-2]", "pages[-1]"]


@pytest.mark.parametrize("encoding", ["ids", "counts"])
def test_a_table_and_single_rows_encode_alike(encoding: str) -> None:
    column = _column(encoding)
    array = pa.chunked_array([pa.array(LISTS[:2]), pa.array(LISTS[2:])])
    table = np.zeros((len(LISTS), column.width))
    column.encode_array(array, table, 0)
    for i, value in enumerate(LISTS):
        row = np.zeros(column.width)
        column.encode_value(value, row, 0)
        np.testing.assert_array_equal(row, table[i])
    sliced = np.zeros((3, column.width))  # a slice of a list array keeps its own offsets
    column.encode_array(pa.array(LISTS).slice(3, 3), sliced, 0)
    np.testing.assert_array_equal(sliced, table[3:])


def test_counts_are_a_bag_of_the_last_tokens() -> None:
    column = _column("counts")
    assert column.feature_names == [f"pages={t}" for t in column.tokens] + ["pages=unknown"]
    row = np.zeros(column.width)
    column.encode_value(["home"] * 7 + ["checkout"], row, 0)
    assert row.tolist() == [3, 0, 0, 1, 0, 0]  # last 4 only
    row = np.zeros(column.width)
    column.encode_value(("item", "zzz", None), row, 0)  # a tuple is a list too
    assert row.tolist() == [0, 1, 0, 0, 0, 2]


def test_rows_that_are_not_lists_of_strings_are_refused_by_field() -> None:
    column = _column("ids")
    out = np.zeros(column.width)
    with pytest.raises(RowError, match="field 'pages' must be a list of strings or null; got str 'home'"):
        column.encode_value("home", out, 0)
    with pytest.raises(RowError, match="item 1 is int 3"):
        column.encode_value(["home", 3], out, 0)
    with pytest.raises(RowError, match="must hold lists of strings"):
        column.encode_array(pa.array([[1, 2]]), np.zeros((1, 4)), 0)


def test_list_columns_are_inferred_as_sequences_and_feed_a_bag_of_tokens_model() -> None:
    rng = np.random.default_rng(0)
    pages = [list(rng.choice(["home", "item", "cart"], rng.integers(1, 6))) for _ in range(600)]
    bought = [("cart" in p) != (rng.random() < 0.1) for p in pages]
    table = pa.table({"pages": pages, "spend": rng.normal(size=600), "bought": bought})
    bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression())
    assert bundle.options["sequences"] == "counts"
    counts = Counter(t for p in pages for t in p)
    assert bundle.signature["inputs"][0] == {
        "name": "pages",
        "kind": "sequence",
        "type": "array",
        "nullable": True,
        "items": "string",
        "length": 5,
        "tokens": sorted(counts, key=lambda t: -counts[t]),
    }
    with_cart = bundle.predict_one({"pages": ["home", "cart"], "spend": 0.0})
    assert with_cart > 0.5 > bundle.predict_one({"pages": ["home", "item"], "spend": 0.0})
    assert bundle.evaluate(table)["auc"] > 0.85
    short = Bundle.fit(table, label="bought", estimator=LogisticRegression(), sequence_length=1)
    assert short.preprocessor.columns[0].length == 1  # type: ignore[attr-defined]
    with pytest.raises(BundleError, match="sequence_length=0"):
        Bundle.fit(table, label="bought", estimator=LogisticRegression(), sequence_length=0)


def test_a_sequence_column_saves_as_json_and_malformed_ones_are_refused() -> None:
    column = _column("ids")
    data = json.loads(json.dumps(column.to_json()))
    again = column_from_json(data)
    assert again.to_json() == column.to_json()
    assert Preprocessor.from_json([data]).signature() == Preprocessor([column]).signature()
    for bad in ({"length": 0}, {"encoding": "onehot"}, {"tokens": ["a", 1]}, {"length": "4"}):
        with pytest.raises(BundleError, match="malformed column"):
            column_from_json({**data, **bad})
