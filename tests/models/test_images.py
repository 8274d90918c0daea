"""Image columns: base64 pictures are decoded, resized and normalised inside the bundle; malformed, foreign
and oversized pictures are refused naming the field."""

from __future__ import annotations

import base64
import doctest
import io
import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image as PILImage
from sklearn.linear_model import LogisticRegression

import kawa.models.images
from kawa.models import Bundle, BundleError, Image, RowError
from kawa.models.images import ImageColumn
from kawa.models.preprocess import column_from_json


def png(picture: PILImage.Image, format: str = "PNG") -> bytes:
    out = io.BytesIO()
    picture.save(out, format=format)
    return out.getvalue()


def halves(size: tuple[int, int] = (40, 20)) -> PILImage.Image:
    """Black on the left half, white on the right half."""
    picture = PILImage.new("L", size, 0)
    picture.paste(255, (size[0] // 2, 0, size[0], size[1]))
    return picture


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def column(**spec: object) -> ImageColumn:
    return ImageColumn("photo", Image(**spec), indicator=False)  # type: ignore[arg-type]


def test_pixels_are_resized_grey_levels_in_zero_to_one_row_by_row() -> None:
    pixels = column(size=(4, 2)).pixels(b64(png(halves())))
    assert pixels.tolist() == [0.0, 0.0, 1.0, 1.0] * 2
    colour = PILImage.new("RGB", (8, 8), (255, 0, 51))
    rgb = column(size=(2, 2), mode="RGB").pixels(b64(png(colour)))
    assert rgb.tolist() == [1.0, 0.0, 0.2] * 4  # r, g, b of each pixel in turn
    names = ImageColumn("photo", Image(size=(2, 1), mode="RGB"), indicator=True).feature_names
    assert names == [
        "photo[0,0,r]",
        "photo[0,0,g]",
        "photo[0,0,b]",
        "photo[0,1,r]",
        "photo[0,1,g]",
        "photo[0,1,b]",
        "photo=missing",
    ]


def test_base64_variants_files_and_formats_read_the_same() -> None:
    reader = column(size=(4, 2))
    data = png(halves())
    expected = reader.pixels(data)  # raw bytes, as a binary column holds them
    text = b64(data)
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    urlsafe = base64.urlsafe_b64encode(data).decode()
    for variant in (text, f"data:image/png;base64,{text}", wrapped, urlsafe):
        np.testing.assert_array_equal(reader.pixels(variant), expected)
    for fmt in ("JPEG", "GIF", "WEBP", "BMP"):
        np.testing.assert_allclose(reader.pixels(b64(png(halves((80, 40)), fmt))), expected, atol=0.05)
    table = np.zeros((2, 8))
    reader.encode_array(pa.array([data, data], pa.binary()), table, 0)
    strings = np.zeros((2, 8))
    reader.encode_array(pa.array([text, wrapped]), strings, 0)
    np.testing.assert_array_equal(table, strings)
    np.testing.assert_array_equal(table[1], expected)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("not base64 at all!", "is not base64 text"),
        (b64(b"hello, I am text"), "is not an image kawa reads"),
        (b64(png(halves())[:60]), "is a damaged image file"),
        (b64(png(halves(), "TIFF")), "is not an image kawa reads"),
        ("data:image/png,rawdata", "without ';base64,'"),
        (42, "must be an image file"),
    ],
)
def test_malformed_pictures_are_refused_naming_the_field(value: object, words: str) -> None:
    with pytest.raises(RowError, match=words) as caught:
        column(size=(4, 2)).encode_value(value, np.zeros(8), 0)
    assert caught.value.field == "photo"


def test_pictures_over_the_byte_or_pixel_limit_are_refused_before_decoding() -> None:
    big = b64(png(PILImage.new("L", (3000, 3000), 128)))  # 9 M pixels in a small file
    assert len(big) < 100_000
    with pytest.raises(RowError, match=r"3000x3000 = 9,000,000 pixels; the limit is 4,000,000 pixels"):
        column().pixels(big)
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    heavy = png(PILImage.fromarray(noise))
    with pytest.raises(RowError, match=r"of [\d,]+ bytes; the limit is 10,000 bytes"):
        column(max_bytes=10_000).pixels(b64(heavy))
    with pytest.raises(RowError, match="the limit is 10,000 bytes"):
        column(max_bytes=10_000).pixels(heavy)
    reader = column(size=(4, 2), max_bytes=10_000)
    batch = pa.array([b64(png(halves())), b64(heavy)])
    with pytest.raises(RowError, match="row 1: field 'photo' is an image of") as caught:
        reader.encode_array(batch, np.zeros((2, 8)), 0)
    assert caught.value.row == 1


def test_a_bundle_learns_from_pictures_and_serves_base64_rows() -> None:
    rng = np.random.default_rng(1)
    rows, labels = [], []
    for _ in range(60):
        bright = bool(rng.random() < 0.5)
        level = int(rng.integers(170, 256) if bright else rng.integers(0, 90))
        rows.append(png(PILImage.new("L", (24, 24), level)))
        labels.append("day" if bright else "night")
    rows[3] = None  # type: ignore[call-overload]
    table = pa.table({"photo": pa.array(rows, pa.binary()), "sky": labels})
    spec = Image(size=(6, 6), max_pixels=10_000)
    bundle = Bundle.fit(table, label="sky", estimator=LogisticRegression(), kinds={"photo": spec})
    assert bundle.preprocessor.width == 36 + 1  # pixels and the missing slot (training had a null)
    day = b64(png(PILImage.new("L", (100, 50), 230)))
    night = b64(png(PILImage.new("L", (100, 50), 20)))
    assert bundle.predict([{"photo": day}, {"photo": night}])[0] < 0.2  # P(night) of a bright sky
    assert bundle.predict_one({"photo": night}) > 0.8
    loaded = Bundle.from_files(bundle.to_files())
    assert loaded.predict_one({"photo": night}) == bundle.predict_one({"photo": night})
    np.testing.assert_allclose(loaded.predict_table(table), bundle.predict_table(table))
    entry = bundle.signature["inputs"][0]
    assert entry["kind"] == "image" and entry["type"] == "string" and entry["format"] == "base64"
    assert entry["size"] == [6, 6] and entry["max_pixels"] == 10_000 and entry["mode"] == "L"
    example = bundle.signature["example"]["photo"]
    assert 0.0 < bundle.predict_one({"photo": example}) < 1.0  # the example is a valid request
    with pytest.raises(RowError, match="field 'photo' is an image of 200x100 = 20,000 pixels"):
        bundle.predict_one({"photo": b64(png(PILImage.new("L", (200, 100))))})
    saved = json.loads(bundle.to_files()["bundle.json"])["columns"][0]
    assert saved == {
        "kind": "image",
        "name": "photo",
        "size": [6, 6],
        "mode": "L",
        "max_bytes": 2_000_000,
        "max_pixels": 10_000,
        "indicator": True,
    }


def test_bad_specs_and_saved_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        Image(size=(0, 10))
    with pytest.raises(ValueError, match="mode"):
        Image(mode="CMYK")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        Image(max_bytes=0)
    with pytest.raises(BundleError, match="malformed column"):
        column_from_json({**column().to_json(), "mode": "P"})
    with pytest.raises(BundleError, match="cannot use training column 'photo' as image"):
        Bundle.fit(
            pa.table({"photo": [1, 2], "y": [0, 1]}),
            label="y",
            estimator=LogisticRegression(),
            kinds={"photo": "image"},
        )


def test_docstring_examples_run() -> None:
    result = doctest.testmod(kawa.models.images)
    assert result.attempted > 0 and result.failed == 0
