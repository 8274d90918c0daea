"""Field paths into events: how the online engine reads one from an event dict, and its SQL over the lake.

A path is dotted (`page`, `keys.session_id`, `context.campaign.source`). The typed columns of the lake
(`event_name`, `page`, `item_id`, `category`, `price`, `quantity`, `revenue`, `event_id` and
`keys.user_id|visitor_id|session_id`) are read from their columns offline, and coerced online to the
column's type exactly as the lake writer does (an `item_id` sent as 12 is the text "12"). Any other path
is read from the `properties` JSON text (the event as sent).

A field is read in one of three ways, the same online and offline:
- `value`: a typed column's value; for other paths the JSON value as text (strings as they are, integers
  and booleans as JSON writes them, other numbers as Python's `repr` of the float, which is also
  DuckDB's text of a DOUBLE); null, objects and arrays are missing.
- `number`: a DOUBLE; for other paths only JSON numbers (booleans and strings are missing).
- `raw`: the JSON value itself, for filters, which compare with the operand's type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kawa.streaming.errors import StreamError

Getter = Callable[[dict[str, Any]], Any]

TEXT, ID, DOUBLE, BIGINT, JSON = "VARCHAR", "ID", "DOUBLE", "BIGINT", "JSON"

# Typed lake columns -> kind (ID: text in the lake, sent as a string or an integer).
TYPED: dict[str, str] = {
    "event_id": ID,
    "event_name": TEXT,
    "page": TEXT,
    "item_id": ID,
    "category": TEXT,
    "price": DOUBLE,
    "quantity": BIGINT,
    "revenue": DOUBLE,
    "keys.user_id": ID,
    "keys.visitor_id": ID,
    "keys.session_id": ID,
}
# Paths whose online value differs from what the lake keeps, so no feature or filter may read them.
REFUSED = {
    "sync_date": "the event time is the engine's t_us and the lake's sync_date; "
    "use seconds_since_previous or windows",
    "received_at": "it is set by the collector, not sent with the event",
    "_date": "it is the lake's partition column, not part of the event",
    "properties": "it is the lake's copy of the whole event; name a field inside it instead",
    "keys.api_key": "the lake does not keep write keys",
}
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT_MIN, _INT_MAX = -(2**63), 2**64  # JSON integers DuckDB reads as BIGINT or UBIGINT
_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


class Field:
    """A checked dotted path: its online getters and its SQL over the lake `events` table.

    >>> Field("keys.session_id").value({"keys": {"session_id": 7}})
    '7'
    >>> Field("quantity").sql_number()
    'CAST("quantity" AS DOUBLE)'
    """

    __slots__ = ("kind", "number", "parts", "path", "raw", "value")

    def __init__(self, path: str, *, where: str = "") -> None:
        at = f"{where}: " if where else ""
        if not isinstance(path, str) or not path.strip():
            raise StreamError(f"{at}field {path!r} must be a dotted path such as 'page' or 'keys.user_id'")
        parts = tuple(path.split("."))
        for part in parts:
            if not _PART.match(part):
                raise StreamError(
                    f"{at}field {path!r}: {part!r} is not a plain name; use letters, digits and '_', "
                    "separated by dots (e.g. 'context.campaign.source')"
                )
        for n in range(1, len(parts) + 1):
            head = ".".join(parts[:n])
            if head in REFUSED:
                raise StreamError(f"{at}field {path!r} cannot be used: {REFUSED[head]}")
            if head in TYPED and n < len(parts):
                kind = _kind_name(TYPED[head])
                raise StreamError(f"{at}field {path!r}: {head!r} is a {kind} column with no fields inside")
        self.path = path
        self.parts = parts
        self.kind = TYPED.get(path, JSON)
        self.raw: Getter = _raw_getter(parts, self.kind)
        self.value: Getter = _value_getter(parts, self.kind)
        self.number: Getter = _number_getter(parts, self.kind)

    def __repr__(self) -> str:
        return f"Field({self.path!r})"

    @property
    def is_numeric(self) -> bool:
        """Whether `value` is a number (a DOUBLE or BIGINT column)."""
        return self.kind in (DOUBLE, BIGINT)

    @property
    def value_type(self) -> str:
        """The DuckDB type of `sql_value()`."""
        return self.kind if self.kind in (DOUBLE, BIGINT) else "VARCHAR"

    def sql_raw(self) -> str:
        """The typed column, or the JSON text at the path (for `json_type` and friends)."""
        if self.kind == JSON:
            return f"json_extract(properties, {self._json_path()})"
        if self.parts[0] == "keys":
            return f"struct_extract(keys, '{self.parts[1]}')"
        return f'"{self.path}"'

    def sql_json_type(self) -> str:
        """The JSON type of a non-column path: 'VARCHAR', 'BIGINT', 'UBIGINT', 'DOUBLE', 'BOOLEAN', ...."""
        return f"json_type(properties, {self._json_path()})"

    def sql_value(self) -> str:
        """SQL of the `value` reading (NULL where the online getter gives None)."""
        if self.kind != JSON:
            return self.sql_raw()
        jp, jt = self._json_path(), self.sql_json_type()
        as_double = f"TRY_CAST(json_extract(properties, {jp}) AS DOUBLE)"
        return (
            f"CASE WHEN {jt} IN ('VARCHAR', 'BOOLEAN', 'BIGINT', 'UBIGINT') "
            f"THEN json_extract_string(properties, {jp}) "
            f"WHEN {jt} = 'DOUBLE' THEN CAST({as_double} AS VARCHAR) END"
        )

    def sql_number(self) -> str:
        """SQL of the `number` reading: a DOUBLE or NULL."""
        if self.kind in (DOUBLE, BIGINT):
            return f"CAST({self.sql_raw()} AS DOUBLE)"
        if self.kind != JSON:
            return "CAST(NULL AS DOUBLE)"
        return (
            f"CASE WHEN {self.sql_json_type()} IN {_NUMBER_TYPES} "
            f"THEN TRY_CAST(json_extract(properties, {self._json_path()}) AS DOUBLE) END"
        )

    def _json_path(self) -> str:
        return "'$." + ".".join(self.parts) + "'"


def _kind_name(kind: str) -> str:
    return {TEXT: "text", ID: "text", DOUBLE: "number", BIGINT: "integer"}.get(kind, "JSON")


# How a value `v` read at a path becomes a reading (Python statements ending in a return).
COERCE: dict[str, str] = {
    "raw": "return v",
    TEXT: "return v if type(v) is str else None",
    # The collector takes ids as strings or integers; the lake keeps them as text.
    ID: "t = type(v)\nif t is str: return v\nreturn str(v) if t is int else None",
    DOUBLE: "t = type(v)\nif t is float: return v\nreturn float(v) if t is int else None",
    BIGINT: "return v if type(v) is int else None",
    "bigint_number": "return float(v) if type(v) is int else None",
    "json_value": "if type(v) is str: return v\nreturn None if v is None else json_text(v)",
    "none": "return None",
}


def access_source(parts: tuple[str, ...]) -> list[str]:
    """Python lines that leave the value at `parts` of event `e` in `v` (None when absent)."""
    return [f"v = e.get({parts[0]!r})"] + [
        f"v = v.get({p!r}) if type(v) is dict else None" for p in parts[1:]
    ]


def compile_getter(parts: tuple[str, ...], coerce: str) -> Getter:
    """One generated function that reads `parts` and applies COERCE[`coerce`]: no nested calls per event."""
    body = access_source(parts) + COERCE[coerce].split("\n")
    source = "def get(e):\n" + "".join(f"    {line}\n" for line in body)
    namespace: dict[str, Any] = {"json_text": json_text}
    exec(source, namespace)  # parts are checked plain names, written as literals with repr
    return namespace["get"]  # type: ignore[no-any-return]


def _raw_getter(parts: tuple[str, ...], kind: str) -> Getter:
    """The value at `parts`, coerced to the column type for typed columns (None when it has another)."""
    return compile_getter(parts, "raw" if kind == JSON else kind)


def _value_getter(parts: tuple[str, ...], kind: str) -> Getter:
    return compile_getter(parts, "json_value" if kind == JSON else kind)


def _number_getter(parts: tuple[str, ...], kind: str) -> Getter:
    coerce = {DOUBLE: DOUBLE, BIGINT: "bigint_number", JSON: DOUBLE}.get(kind, "none")
    return compile_getter(parts, coerce)


def json_text(v: Any) -> str | None:
    """A JSON value as text the way the offline SQL writes it; None for null, objects and arrays.

    >>> [json_text(x) for x in ("a", 12, 1.5, 1e20, True, None, [1])]
    ['a', '12', '1.5', '1e+20', 'true', None, None]
    """
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is int:
        return str(v) if _INT_MIN <= v < _INT_MAX else repr(float(v))
    if t is bool:
        return "true" if v else "false"
    if t is float:
        return repr(v)
    return None


def json_number(v: Any) -> float | None:
    """A JSON value as a DOUBLE the way the offline SQL reads it; None unless it is a JSON number."""
    t = type(v)
    return float(v) if t is float or t is int else None
