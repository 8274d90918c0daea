"""Rows typed from a form's text by a registered model's input signature, predicted like JSON rows."""

from __future__ import annotations

import doctest
import importlib

import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, RowError
from kawa.models.signature import row_from_text, text_value


@pytest.fixture(scope="module")
def bundle(table: pa.Table) -> Bundle:
    return Bundle.fit(table, label="bought", estimator=LogisticRegression(max_iter=1000))


def test_the_example_row_as_text_types_back_into_the_same_prediction(bundle: Bundle) -> None:
    signature = bundle.signature
    texts = {name: text_value(value) for name, value in signature["example"].items()}
    assert all(isinstance(t, str) for t in texts.values())
    row = row_from_text(signature["inputs"], texts)
    assert set(row) == {f["name"] for f in signature["inputs"]}
    assert isinstance(row["age"], float) and isinstance(row["vip"], bool)
    assert bundle.predict_one(row) == pytest.approx(bundle.predict_one(signature["example"]), rel=1e-4)


def test_blank_fields_are_null_and_bad_text_names_its_field(bundle: Bundle) -> None:
    inputs = bundle.signature["inputs"]
    row = row_from_text(inputs, {"age": " ", "media": "Twitter"})
    assert row["age"] is None and row["gender"] is None and row["media"] == "Twitter"
    assert 0.0 < bundle.predict_one(row) < 1.0  # nulls are filled as in training
    with pytest.raises(RowError, match="'age' must be a number; got 'old'"):
        row_from_text(inputs, {"age": "old"})
    with pytest.raises(RowError, match="'vip' must be true or false"):
        row_from_text(inputs, {"vip": "maybe"})
    with pytest.raises(RowError, match="finite"):
        row_from_text(inputs, {"age": "nan"})


def test_integers_and_lists() -> None:
    inputs = [{"name": "zip", "type": "integer"}, {"name": "pages", "type": "array"}]
    assert row_from_text(inputs, {"zip": "1010", "pages": "home,  cart item"}) == {
        "zip": 1010,
        "pages": ["home", "cart", "item"],
    }
    with pytest.raises(RowError, match="whole number"):
        row_from_text(inputs, {"zip": "10.5"})


@pytest.mark.parametrize("module", ["kawa.models.signature", "kawa.models.report"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
