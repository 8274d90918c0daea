"""Image input columns: a picture sent as base64 text in the JSON request becomes normalised pixels.

Decoding, resizing and normalisation happen inside the bundle, so a client sends the file it has
(PNG, JPEG, GIF, WebP or BMP) as base64 text, or as a `data:image/png;base64,...` URL, and nothing
else. The image is converted to grey levels ("L") or colour ("RGB"), resized to the bundle's fixed
size (each new pixel the mean of the pixels it covers; the aspect ratio is not kept), and each
pixel's value divided by 255, so every slot lies in [0, 1]. Slots run row by row
(top left first), channel by channel within a pixel.

What is refused, naming the field (the predict API answers 422): text that is not base64, a file
that is not an image of those formats or is cut short, and an image over `max_bytes` (its file size)
or `max_pixels` (width x height as sent: a small file can unpack to a huge picture). The pixel limit
is checked from the file's header, before the pixels are unpacked.

>>> import base64, io
>>> from PIL import Image as PILImage
>>> buffer = io.BytesIO()
>>> PILImage.new("L", (40, 20), color=255).save(buffer, format="PNG")
>>> column = ImageColumn("photo", Image(size=(4, 2)), indicator=False)
>>> column.pixels(base64.b64encode(buffer.getvalue()).decode()).tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.columns import Array, Column
from kawa.models.errors import RowError

Mode = Literal["L", "RGB"]
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
_DATA_URL = "data:"


@dataclass(frozen=True)
class Image:
    """How an image input is read: `kinds={"photo": Image(size=(32, 32), mode="RGB")}`, or
    `kinds={"photo": "image"}` for these defaults. The model sees width x height x channels slots."""

    kind: ClassVar[str] = "image"
    size: tuple[int, int] = (32, 32)  # (width, height) every image is resized to
    mode: Mode = "L"  # "L": grey levels, one channel; "RGB": colour, three channels
    max_bytes: int = 2_000_000  # the largest image file accepted, in bytes (after base64 decoding)
    max_pixels: int = 4_000_000  # the largest image accepted, in width x height pixels as sent

    def __post_init__(self) -> None:
        width, height = self.size
        if not (type(width) is int and type(height) is int and 1 <= width <= 1024 and 1 <= height <= 1024):
            raise ValueError(f"size={self.size!r}: use (width, height) in pixels, each from 1 to 1024")
        if self.mode not in ("L", "RGB"):
            raise ValueError(f"mode={self.mode!r}: use 'L' (grey levels) or 'RGB' (colour)")
        for name in ("max_bytes", "max_pixels"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name}={value!r}: use a whole number, 1 or more")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def width(self) -> int:
        """Slots per image."""
        return self.size[0] * self.size[1] * self.channels


class ImageColumn(Column):
    """An image (base64 text, or raw bytes from a binary column) as normalised pixels of a fixed size;
    a null image is all zeros, plus a `missing` slot when the training table had null images."""

    kind = "image"
    json_type = "string"
    expected = "an image file (PNG, JPEG, GIF, WebP or BMP) as base64 text"

    def __init__(self, name: str, spec: Image, indicator: bool) -> None:
        super().__init__(name)
        self.spec = spec
        self.indicator = indicator

    @classmethod
    def learn(cls, name: str, array: Array, spec: Image) -> ImageColumn:
        """Images need nothing learned but whether training had nulls; every training image is checked
        when the table is encoded."""
        _images(name, array)  # a column of the wrong type fails here, with its type named
        return cls(name, spec, indicator=array.null_count > 0)

    @property
    def feature_names(self) -> list[str]:
        w, h = self.spec.size
        channels = [""] if self.spec.mode == "L" else [",r", ",g", ",b"]
        names = [f"{self.name}[{y},{x}{c}]" for y in range(h) for x in range(w) for c in channels]
        return [*names, f"{self.name}=missing"] if self.indicator else names

    def pixels(self, value: str | bytes) -> np.ndarray:
        """The normalised pixels of one image (base64 text or file bytes); RowError if it is refused."""
        data = self._file(value) if isinstance(value, str) else value
        if len(data) > self.spec.max_bytes:
            raise self._too_big(len(data))
        return _decode(self.name, data, self.spec)

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        width = self.spec.width
        for row, value in enumerate(_images(self.name, array)):
            if value is None:
                if self.indicator:
                    out[row, offset + width] = 1.0
                continue
            try:
                out[row, offset : offset + width] = self.pixels(value)
            except RowError as exc:
                raise exc.at(row) from None

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is None:
            if self.indicator:
                out[offset + self.spec.width] = 1.0
            return
        if not isinstance(value, str | bytes):
            raise self.wrong_type(value)
        out[offset : offset + self.spec.width] = self.pixels(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "size": list(self.spec.size),
            "mode": self.spec.mode,
            "max_bytes": self.spec.max_bytes,
            "max_pixels": self.spec.max_pixels,
            "indicator": self.indicator,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageColumn:
        """The column `to_json` described (KeyError, TypeError or ValueError if it is malformed)."""
        width, height = data["size"]
        spec = Image(
            size=(width, height),
            mode=data["mode"],
            max_bytes=data["max_bytes"],
            max_pixels=data["max_pixels"],
        )
        return cls(data["name"], spec, bool(data["indicator"]))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "format": "base64",
            "media": [f"image/{f.lower()}" for f in FORMATS],
            "size": list(self.spec.size),
            "mode": self.spec.mode,
            "max_bytes": self.spec.max_bytes,
            "max_pixels": self.spec.max_pixels,
        }

    def example(self) -> Any:
        """A mid-grey PNG of the model's size, as base64: a valid request to start from."""
        from PIL import Image as PILImage

        buffer = io.BytesIO()
        PILImage.new(self.spec.mode, self.spec.size, color="grey").save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    def _file(self, text: str) -> bytes:
        """The image file that base64 `text` (optionally a data URL) holds."""
        if text.startswith(_DATA_URL):
            head, comma, text = text.partition(",")
            if not comma or not head.endswith(";base64"):
                raise RowError(self.name, "is a data URL without ';base64,'; send the image as base64 text")
        if any(c.isspace() for c in text[:100]) or any(c.isspace() for c in text[-100:]):
            text = "".join(text.split())  # line-wrapped base64 (MIME style)
        # Refuse before decoding: 4 characters of base64 hold 3 bytes.
        if len(text) // 4 * 3 > self.spec.max_bytes + 3:
            raise self._too_big(len(text) // 4 * 3)
        urlsafe = "-" in text or "_" in text
        try:
            return base64.b64decode(text, altchars=b"-_" if urlsafe else None, validate=True)
        except (binascii.Error, ValueError):
            raise RowError(
                self.name, f"is not base64 text; send the image file's bytes base64-encoded ({self.expected})"
            ) from None

    def _too_big(self, size: int) -> RowError:
        w, h = self.spec.size
        return RowError(
            self.name,
            f"is an image of {size:,} bytes; the limit is {self.spec.max_bytes:,} bytes: send a smaller "
            f"file (the model resizes it to {w}x{h} anyway)",
        )


def _decode(name: str, data: bytes, spec: Image) -> np.ndarray:
    """Decode, check, convert, resize and normalise one image file."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width * height > spec.max_pixels:
                raise _too_many_pixels(name, width, height, spec)
            image.draft(spec.mode, spec.size)  # JPEG: decode at a reduced scale where it can
            pixels = image.convert(spec.mode).resize(spec.size, PILImage.Resampling.BOX)
    except RowError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise _too_many_pixels(name, None, None, spec) from None
    except UnidentifiedImageError:
        raise RowError(
            name, f"is not an image kawa reads ({', '.join(FORMATS)}); send one of those files as base64"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file
        raise RowError(name, f"is a damaged image file ({exc}); send the whole file as base64") from None
    return np.asarray(pixels, dtype=np.float64).reshape(-1) / 255.0


def _too_many_pixels(name: str, width: int | None, height: int | None, spec: Image) -> RowError:
    size = f"{width}x{height} = {width * height:,} pixels" if width and height else "too many pixels"
    return RowError(
        name,
        f"is an image of {size}; the limit is {spec.max_pixels:,} pixels: send a smaller picture "
        f"(the model resizes it to {spec.size[0]}x{spec.size[1]} anyway)",
    )


def _images(name: str, array: Array) -> list[str | bytes | None]:
    """The column's values: base64 text (string columns) or file bytes (binary columns)."""
    t = array.type
    if pa.types.is_null(t):
        return [None] * len(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.cast(array, pa.string()).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.cast(array, pa.binary()).to_pylist()  # type: ignore[no-any-return]
    raise RowError(name, f"must hold images as base64 text or file bytes; got a column of type {t}")
