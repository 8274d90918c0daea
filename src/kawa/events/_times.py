"""Event times parsed for a whole batch at once with NumPy, for the stamp shapes clients really send.

`kawa.events.validate.parse_time` (datetime.fromisoformat) costs microseconds per event, more than the
rest of validation together; this reads the common shapes in a few array operations per batch and leaves
every other stamp to `parse_time`, so what is accepted, and every message, stays the same.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date

import numpy as np

UNPARSED = np.iinfo(np.int64).min  # below any time datetime can hold
_VECTOR_MIN = 24  # fewer stamps than this are left to parse_time
# Days since 1970-01-01 at the start of each month, and days in it, for the years read here; other
# years (kawa accepts none before 2000 and none more than a week ahead) are left to parse_time.
_FIRST_YEAR, _LAST_YEAR = 2000, 2099
_MONTHS = [(y, m) for y in range(_FIRST_YEAR, _LAST_YEAR + 1) for m in range(1, 13)]
_MONTH_START = np.array([(date(y, m, 1) - date(1970, 1, 1)).days for y, m in _MONTHS])
_MONTH_DAYS = np.array([calendar.monthrange(y, m)[1] for y, m in _MONTHS])
# year, month, day, hour, minute, second, microsecond, offset hours, offset minutes
_LOW = np.array([_FIRST_YEAR, 1, 1, 0, 0, 0, 0, 0, 0])
_HIGH = np.array([_LAST_YEAR, 12, 31, 23, 59, 59, 999_999, 23, 59])


class _Layout:
    """One fixed-width stamp shape: `0` a digit, `?` `T` or space, `+` the offset's sign, else itself."""

    def __init__(self, fraction: int, zone: str) -> None:
        template = "0000-00-00?00:00:00" + ("." + "0" * fraction if fraction else "") + zone
        self.width = len(template)
        digits = [i for i, ch in enumerate(template) if ch == "0"]
        # Per column, the lowest and highest byte allowed; `?` and `+` are narrowed after the range test.
        self.low = np.frombuffer(template.replace("?", " ").encode(), np.uint8)
        self.high = np.frombuffer(
            template.replace("0", "9").replace("?", "T").replace("+", "-").encode(), np.uint8
        )
        self.sign = template.find("+")
        # Place values that turn the digit matrix into the fields of _LOW/_HIGH in one matrix product.
        self.weights = np.zeros((self.width, 9))  # float: BLAS, and exact far beyond these sums
        zone_digits = [i for i in digits if i >= 20 + fraction]
        columns: list[Sequence[int]] = [
            range(0, 4),
            range(5, 7),
            range(8, 10),
            range(11, 13),
            range(14, 16),
            range(17, 19),
        ]
        columns += [range(20, 20 + fraction), zone_digits[:2], zone_digits[2:]]
        for which, cols in enumerate(columns):
            scale = 10 ** (6 - fraction) if which == 6 else 1
            for k, col in enumerate(cols):
                self.weights[col, which] = 10 ** (len(cols) - 1 - k) * scale


_LAYOUTS: dict[int, list[_Layout]] = {}
for _fraction in (0, 3, 6):
    for _zone in ("", "Z", " UTC", "+00:00"):
        _shape = _Layout(_fraction, _zone)
        _LAYOUTS.setdefault(_shape.width, []).append(_shape)


def event_times(stamps: list[str | None], received_at: int) -> np.ndarray:
    """`parse_time` of each stamp (None: `received_at`) for the common shapes, vectorised with NumPy.

    Reads `YYYY-MM-DD[T ]HH:MM:SS`, then `.fff` or `.ffffff`, then nothing, `Z`, ` UTC` or `+HH:MM`/`-HH:MM`,
    and gives exactly what `parse_time` gives for them. Anything else, and any value out of range, comes
    back as `UNPARSED` for `parse_time` to decide, so the rules and messages stay `parse_time`'s own.
    """
    n = len(stamps)
    out = np.full(n, UNPARSED, dtype=np.int64)
    out[np.fromiter((s is None for s in stamps), dtype=bool, count=n)] = received_at
    if n < _VECTOR_MIN:
        return out  # a few dozen array operations cost more than parse_time on a handful of stamps
    texts = ["" if s is None else s for s in stamps]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    found_rows, found_fields, found_signs = [], [], []
    for width in np.unique(lengths).tolist():
        if width not in _LAYOUTS:
            continue
        rows = np.flatnonzero(lengths == width)
        try:
            data = "".join([texts[i] for i in rows.tolist()]).encode("ascii")
        except UnicodeEncodeError:
            continue  # a non-ASCII stamp: parse_time decides each of this width
        chars = np.frombuffer(data, np.uint8).reshape(len(rows), width)
        digits = (chars - np.uint8(48)).astype(np.float64)
        separator = (chars[:, 10] == 84) | (chars[:, 10] == 32)
        for shape in _LAYOUTS[width]:  # the shapes of one width exclude each other
            ok = separator & ((chars >= shape.low) & (chars <= shape.high)).all(axis=1)
            sign = np.zeros(len(rows), dtype=np.int64)
            if shape.sign >= 0:
                sign = 44 - chars[:, shape.sign].astype(np.int64)  # '+' 43 -> 1, '-' 45 -> -1
                ok &= sign != 0  # ',' (44) lies between them
            found_rows.append(rows[ok])
            found_fields.append(digits[ok] @ shape.weights)
            found_signs.append(sign[ok])
            separator &= ~ok
            if not separator.any():
                break
    if not found_rows:
        return out
    rows = np.concatenate(found_rows)
    f = np.concatenate(found_fields).astype(np.int64)
    ok = ((f >= _LOW) & (f <= _HIGH)).all(axis=1)
    month = np.where(ok, (f[:, 0] - _FIRST_YEAR) * 12 + f[:, 1] - 1, 0)  # index into the month tables
    ok &= f[:, 2] <= _MONTH_DAYS[month]
    days = _MONTH_START[month] + f[:, 2] - 1
    offset = np.concatenate(found_signs) * (f[:, 7] * 3600 + f[:, 8] * 60)
    seconds = days * 86_400 + f[:, 3] * 3600 + f[:, 4] * 60 + f[:, 5] - offset
    out[rows[ok]] = (seconds * 1_000_000 + f[:, 6])[ok]
    return out
