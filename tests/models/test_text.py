"""Text columns: free text becomes TF-IDF weights of character n-grams inside the bundle, the same for a
whole table, one JSON row and a bundle loaded back from its files."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

import kawa.models.text
from kawa.models import Bundle, BundleError, RowError, Text
from kawa.models.preprocess import Preprocessor, column_from_json
from kawa.models.text import TextColumn

TITLES = [
    "Hot Sale Wireless Earbuds Bluetooth Black",
    "Northwind Running Shoe Pro 3",
    "Best Plush Toy Soft Stuffed Animal Pink",
    "Aurora Blazer 5",
    None,
    "",
    "Free Shipping Vitamin C Serum Face Care Blue",
    "Kestrel Oxford Lite 2",
]


def test_weights_match_scikit_learns_tfidf_for_tables_and_single_rows() -> None:
    spec = Text(ngrams=(2, 4), max_features=60)
    column = TextColumn.learn("title", pa.array(TITLES), spec)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=60, sublinear_tf=True)
    expected = reference.fit_transform([t or "" for t in TITLES]).toarray()
    assert column.terms == reference.get_feature_names_out().tolist()
    out = np.zeros((len(TITLES), column.width))
    column.encode_array(pa.array(TITLES), out, 0)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    for i, title in enumerate(TITLES):
        row = np.zeros(column.width)
        column.encode_value(title, row, 0)
        np.testing.assert_allclose(row, expected[i], atol=1e-12)
    assert not out[4].any() and not out[5].any()  # null and empty text: no n-grams


def test_titles_teach_a_bundle_what_categories_cannot() -> None:
    """Re-listed products differ in every title, so as categories they are all unseen; as n-grams the
    model recognises a new re-listing by its words."""
    rng = np.random.default_rng(0)
    prefixes, colours = ["Hot Sale", "Best", "2025 New", "Upgraded"], ["Black", "Pink", "Blue", "Grey"]
    brands, nouns = ["Northwind", "Aurora", "Kestrel", "Lumen"], ["Oxford", "Blazer", "Vase", "Novel"]
    titles, labels = [], []
    for _ in range(200):
        if rng.random() < 0.5:
            titles.append(f"{rng.choice(prefixes)} Wireless Earbuds Bluetooth {rng.choice(colours)}")
            labels.append(1)
        else:
            titles.append(f"{rng.choice(brands)} {rng.choice(nouns)} {rng.integers(1, 10)}")
            labels.append(0)
    table = pa.table({"title": titles, "flagged": labels})
    text = Bundle.fit(table, label="flagged", estimator=LogisticRegression(), kinds={"title": "text"})
    category = Bundle.fit(table, label="flagged", estimator=LogisticRegression())
    new = [{"title": "Top Rated Earbuds Wireless Bluetooth Green"}, {"title": "Meridian Lamp 7"}]
    spam, clean = text.predict(new)
    assert spam > 0.7 and clean < 0.3
    assert category.predict(new)[0] == pytest.approx(category.predict(new)[1])  # both unseen categories
    assert text.signature["inputs"] == [
        {
            "name": "title",
            "kind": "text",
            "type": "string",
            "nullable": True,
            "analyzer": "char_wb",
            "ngrams": [2, 4],
            "terms": text.preprocessor.columns[0].width,
        }
    ]
    assert isinstance(text.signature["example"]["title"], str) and text.signature["example"]["title"]


def test_a_bundle_with_text_saves_and_loads_to_the_same_predictions() -> None:
    table = pa.table({"title": [t or "x" for t in TITLES] * 5, "price": list(range(40)), "y": [1, 0] * 20})
    spec = Text(ngrams=(1, 3), max_features=40, analyzer="char")
    bundle = Bundle.fit(table, label="y", estimator=LogisticRegression(), kinds={"title": spec})
    loaded = Bundle.from_files(bundle.to_files())
    np.testing.assert_allclose(loaded.predict_table(table), bundle.predict_table(table))
    assert loaded.predict_one({"title": "Hot Sale", "price": 3}) == bundle.predict_one(
        {"title": "Hot Sale", "price": 3}
    )
    saved = json.loads(bundle.to_files()["bundle.json"])["columns"][0]
    assert saved["kind"] == "text" and saved["analyzer"] == "char" and saved["ngrams"] == [1, 3]
    assert len(saved["terms"]) == len(saved["idf"]) == 40


def test_wide_inputs_are_encoded_in_smaller_batches_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = pa.table({"title": [t or "" for t in TITLES] * 50, "y": [1, 0] * 200})
    bundle = Bundle.fit(table, label="y", estimator=LogisticRegression(), kinds={"title": "text"})
    whole = bundle.predict_table(table)
    calls: list[int] = []
    transform = bundle.preprocessor.transform_table

    def counting(part: pa.Table) -> np.ndarray:
        calls.append(part.num_rows)
        return transform(part)

    monkeypatch.setattr(kawa.models.bundle, "BATCH_CELLS", bundle.preprocessor.width * 64)
    monkeypatch.setattr(bundle.preprocessor, "transform_table", counting)
    np.testing.assert_allclose(bundle.predict_table(table), whole)
    assert calls == [64] * 6 + [16]


def test_bad_text_values_and_columns_are_named() -> None:
    column = TextColumn.learn("title", pa.array(TITLES), Text())
    with pytest.raises(RowError, match="'title' must be a string"):
        column.encode_value(42, np.zeros(column.width), 0)
    with pytest.raises(BundleError, match="cannot use training column 'title' as text: must hold text"):
        Preprocessor.learn(pa.table({"title": [1, 2]}), features=["title"], kinds={"title": "text"})
    with pytest.raises(ValueError, match="ngrams"):
        Text(ngrams=(3, 2))
    with pytest.raises(ValueError, match="max_features"):
        Text(max_features=0)
    with pytest.raises(BundleError, match="malformed column"):
        column_from_json({**column.to_json(), "idf": [1.0]})
    empty = TextColumn.learn("title", pa.array([None, ""]), Text())
    assert empty.width == 0 and empty.vector("anything") == {}


def test_docstring_examples_run() -> None:
    result = doctest.testmod(kawa.models.text)
    assert result.attempted > 0 and result.failed == 0
