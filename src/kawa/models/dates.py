"""Date-time input columns: a point in time becomes year, month, weekday, hour and days since 1970."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models.columns import Array, Column, Fill, to_numpy
from kawa.models.errors import RowError

MICROS_PER_DAY = 86_400_000_000
MICROS_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class DatetimeColumn(Column):
    """A point in time (UTC; naive times are taken as UTC) as five numbers: year, month, weekday
    (Monday 0), hour and days since 1970-01-01, each imputed and scaled like a number."""

    kind = "datetime"
    json_type = "date-time"
    expected = "an ISO 8601 date-time such as '2026-01-05T10:00:00Z'"
    PARTS = ("year", "month", "weekday", "hour", "days")

    def __init__(self, name: str, fills: list[Fill], indicator: bool) -> None:
        super().__init__(name)
        self.fills = fills
        self.indicator = indicator

    @classmethod
    def learn(cls, name: str, array: Array, *, scale: bool) -> DatetimeColumn:
        parts = _datetime_parts(name, array)
        return cls(name, [Fill.learn(p, scale) for p in parts], bool(np.isnan(parts[0]).any()))

    @property
    def feature_names(self) -> list[str]:
        names = [f"{self.name}.{p}" for p in self.PARTS]
        return [*names, f"{self.name}=missing"] if self.indicator else names

    def encode_array(self, array: Array, out: np.ndarray, offset: int) -> None:
        parts = _datetime_parts(self.name, array)
        for i, (fill, values) in enumerate(zip(self.fills, parts, strict=True)):
            out[:, offset + i] = fill.column(values)
        if self.indicator:
            out[:, offset + len(self.PARTS)] = np.isnan(parts[0])

    def encode_value(self, value: Any, out: np.ndarray, offset: int) -> None:
        if value is None:
            for i, fill in enumerate(self.fills):
                out[offset + i] = fill.fill
            if self.indicator:
                out[offset + len(self.PARTS)] = 1.0
            return
        moment = self._utc(value)
        us = (moment - _EPOCH) // _MICROSECOND
        parts = (moment.year, moment.month, moment.weekday(), moment.hour, us / MICROS_PER_DAY)
        for i, (fill, v) in enumerate(zip(self.fills, parts, strict=True)):
            out[offset + i] = fill.value(float(v))

    def _utc(self, value: Any) -> datetime:
        """`value` (ISO 8601 text, a datetime or a date) as an aware UTC datetime; naive means UTC."""
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.wrong_type(value) from None
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        elif not isinstance(value, datetime):
            raise self.wrong_type(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "fills": [f.to_json() for f in self.fills],
            "indicator": self.indicator,
        }

    def example(self) -> Any:
        moment = _EPOCH + timedelta(days=self.fills[-1].median)
        return moment.isoformat().replace("+00:00", "Z")


def _datetime_parts(name: str, array: Array) -> list[np.ndarray]:
    """year, month, weekday, hour, days since epoch as float64 columns with NaN for nulls."""
    us = pc.cast(_timestamps(name, array), pa.int64())
    valid = to_numpy(pc.is_valid(us)).astype(bool)
    micros = to_numpy(pc.fill_null(us, 0)).astype(np.int64)
    days = micros // MICROS_PER_DAY
    dates = days.astype("datetime64[D]")
    parts = [
        dates.astype("datetime64[Y]").astype(np.int64) + 1970,
        dates.astype("datetime64[M]").astype(np.int64) % 12 + 1,
        (days + 3) % 7,
        (micros // MICROS_PER_HOUR) % 24,
        micros / MICROS_PER_DAY,
    ]
    out = []
    for part in parts:
        values = part.astype(np.float64)
        values[~valid] = np.nan
        out.append(values)
    return out


def _timestamps(name: str, array: Array) -> Array:
    t = array.type
    if pa.types.is_timestamp(t):
        return pc.cast(array, pa.timestamp("us", t.tz))
    if pa.types.is_date(t) or pa.types.is_null(t):
        return pc.cast(array, pa.timestamp("us"))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        for target in (pa.timestamp("us", "UTC"), pa.timestamp("us")):
            try:
                return pc.cast(array, target)
            except pa.ArrowInvalid:
                continue
        # Mixed forms (with and without a zone, dates alone): parse each value like the row path does.
        column = DatetimeColumn(name, [], False)
        values = array.to_pylist()
        micros: list[int | None] = []
        for row, value in enumerate(values):
            try:
                micros.append(None if value is None else (column._utc(value) - _EPOCH) // _MICROSECOND)
            except RowError as exc:
                raise exc.at(row) from None
        return pa.array(micros, pa.int64())
    raise RowError(name, f"must hold date-times; got a column of type {t}")
