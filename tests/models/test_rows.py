"""Human-readable rows: missing fields, wrong types, nulls and unknown categories, one row or a table."""

from __future__ import annotations

from datetime import UTC, date, datetime

import lightgbm
import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.models import Bundle, RowError

ROW = {
    "age": 34,
    "gender": "male",
    "media": "Twitter",
    "recency_days": 3,
    "vip": False,
    "signup": "2025-06-01T10:00:00Z",
}


@pytest.fixture(scope="module")
def linear(table: pa.Table) -> Bundle:
    return Bundle.fit(table, label="bought", estimator=LogisticRegression(max_iter=1000))


@pytest.fixture(scope="module")
def strict(table: pa.Table) -> Bundle:
    estimator = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)
    return Bundle.fit(table, label="bought", estimator=estimator, unknown="error")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("age", "34", "must be a number or null; got str '34'"),
        ("age", True, "must be a number or null; got bool True"),
        ("age", [34], "must be a number or null; got list"),
        ("media", 3, "must be a string or null; got int 3"),
        ("vip", 1, "must be true or false or null; got int 1"),
        ("signup", "last tuesday", "must be an ISO 8601 date-time"),
        ("signup", 1735689600, "must be an ISO 8601 date-time"),
    ],
)
def test_a_wrong_type_names_the_field_and_what_it_expects(
    linear: Bundle, field: str, value: object, expected: str
) -> None:
    with pytest.raises(RowError, match=expected) as info:
        linear.predict_one({**ROW, field: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"field {field!r} ")
    assert isinstance(info.value, ValueError)


def test_a_missing_field_is_an_error_but_null_is_a_missing_value(linear: Bundle) -> None:
    for field in ROW:
        row = {k: v for k, v in ROW.items() if k != field}
        with pytest.raises(RowError, match=f"field '{field}' is missing; expected") as info:
            linear.predict_one(row)
        assert info.value.field == field
        assert 0 < linear.predict_one({**ROW, field: None}) < 1
    everything_null = dict.fromkeys(ROW)
    assert 0 < linear.predict_one(everything_null) < 1
    # NaN is missing too, and encodes like null.
    assert linear.predict_one({**ROW, "age": float("nan")}) == linear.predict_one({**ROW, "age": None})


def test_missing_values_change_the_prediction_through_their_indicator(linear: Bundle) -> None:
    # Training data had missing ages: null gets its own indicator, so it need not equal the median age.
    median = linear.signature["example"]["age"]
    x_null = linear.preprocessor.transform_row({**ROW, "age": None})
    x_median = linear.preprocessor.transform_row({**ROW, "age": median})
    names = linear.preprocessor.feature_names
    assert x_null[names.index("age")] == pytest.approx(x_median[names.index("age")])
    assert x_null[names.index("age=missing")] == 1.0 and x_median[names.index("age=missing")] == 0.0


def test_an_unknown_category_is_missing_by_default(linear: Bundle) -> None:
    unknown = linear.predict_one({**ROW, "media": "Carrier pigeon"})
    assert unknown == linear.predict_one({**ROW, "media": None})
    assert unknown != linear.predict_one({**ROW, "media": "Twitter"})
    table = pa.Table.from_pylist([{**ROW, "media": "Carrier pigeon"}, {**ROW, "media": None}])
    predicted = linear.predict_table(table)
    assert predicted[0] == pytest.approx(predicted[1]) == pytest.approx(unknown)


def test_an_unknown_category_is_an_error_when_the_model_says_so(strict: Bundle) -> None:
    with pytest.raises(
        RowError, match="field 'media' has unknown category 'Carrier pigeon'; expected one of"
    ) as info:
        strict.predict_one({**ROW, "media": "Carrier pigeon"})
    assert info.value.field == "media"
    assert "'Twitter'" in str(info.value)
    assert 0 < strict.predict_one({**ROW, "media": None}) < 1  # null is still fine
    assert strict.signature["inputs"][2]["unknown"] == "error"
    rows = [ROW, {**ROW, "media": "Fax"}]
    with pytest.raises(RowError, match=r"^row 1: field 'media' has unknown category 'Fax'") as batch:
        strict.predict(rows)
    assert batch.value.row == 1
    with pytest.raises(RowError, match=r"^row 1: field 'media' has unknown category 'Fax'"):
        strict.predict_table(pa.Table.from_pylist(rows))


def test_the_table_path_checks_columns_too(linear: Bundle) -> None:
    with pytest.raises(RowError, match="field 'vip' is missing from the table"):
        linear.predict_table(pa.Table.from_pylist([{k: v for k, v in ROW.items() if k != "vip"}]))
    with pytest.raises(RowError, match="field 'age' must hold numbers; got a column of type string"):
        linear.predict_table(pa.Table.from_pylist([{**ROW, "age": "34"}]))
    with pytest.raises(RowError, match="field 'signup' must be an ISO 8601"):
        linear.predict_table(pa.Table.from_pylist([ROW, {**ROW, "signup": "soon"}]))


def test_date_times_in_any_common_form_agree_between_rows_and_tables(linear: Bundle) -> None:
    moment = datetime(2025, 3, 9, 22, 30, tzinfo=UTC)
    forms = [
        "2025-03-09T22:30:00Z",
        "2025-03-09T23:30:00+01:00",
        "2025-03-09 22:30:00",  # naive means UTC
        moment,
        moment.replace(tzinfo=None),
    ]
    expected = linear.predict_one({**ROW, "signup": moment})
    for form in forms:
        assert linear.predict_one({**ROW, "signup": form}) == pytest.approx(expected, rel=1e-12)
    # A table of mixed text forms goes through the same parsing.
    text = pa.Table.from_pylist([{**ROW, "signup": f} for f in forms[:3]])
    np.testing.assert_allclose(linear.predict_table(text), expected, rtol=1e-12)
    for column in (
        pa.array([moment] * 2, pa.timestamp("ms", "Europe/Paris")),
        pa.array([moment.replace(tzinfo=None)] * 2, pa.timestamp("s")),
    ):
        table = pa.Table.from_pylist([ROW, ROW]).drop_columns(["signup"]).append_column("signup", column)
        np.testing.assert_allclose(linear.predict_table(table), expected, rtol=1e-12)
    day = linear.predict_one({**ROW, "signup": date(2025, 3, 9)})
    assert day == pytest.approx(linear.predict_one({**ROW, "signup": "2025-03-09"}))
    assert day != pytest.approx(expected)


def test_date_parts_are_utc_year_month_weekday_hour_and_days(linear: Bundle) -> None:
    column = next(c for c in linear.preprocessor.columns if c.name == "signup")
    fills = column.fills  # type: ignore[attr-defined]
    x = np.zeros(column.width)
    column.encode_value("2024-02-29T23:59:59+00:00", x, 0)  # a Thursday
    raw = [f.mean + v * f.std for f, v in zip(fills, x, strict=False)]
    assert raw[:4] == pytest.approx([2024, 2, 3, 23])
    assert raw[4] == pytest.approx((datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()) / 86400)


def test_extra_fields_are_ignored_and_rows_must_be_objects(linear: Bundle) -> None:
    assert linear.predict_one({**ROW, "user_id": "u1", "page": "/cart"}) == linear.predict_one(ROW)
    with pytest.raises(RowError, match="a row must be a JSON object"):
        linear.predict_one([34, "male"])  # type: ignore[arg-type]
    with pytest.raises(RowError, match=r"^row 2: a row must be a JSON object"):
        linear.predict([ROW, ROW, "oops"])  # type: ignore[list-item]
    with pytest.raises(RowError, match="expected a list of rows; use predict_one"):
        linear.predict(ROW)  # type: ignore[arg-type]


def test_numpy_numbers_are_numbers(linear: Bundle) -> None:
    assert linear.predict_one({**ROW, "age": np.int64(34), "recency_days": np.float32(3)}) == pytest.approx(
        linear.predict_one(ROW)
    )
