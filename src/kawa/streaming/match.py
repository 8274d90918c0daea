"""Match: the event filter language shared by streaming features and triggers, online and offline.

A spec is a mapping of field paths (see `kawa.streaming.fields`) to conditions; every field's condition
must hold. A condition is a value (equality), a list (any of), or a mapping of operators:
`eq`, `ne`, `in`, `gt`, `gte`, `lt`, `lte`, `glob`, `exists`. Comparisons take the operand's type: a
text operand matches text values, a number matches numbers (never booleans or numeric text), so
`{"results": 3}` does not match `"results": "3"`. A missing (or null) field fails every condition except
`exists: false`; `ne` holds for any present value that is not equal. `glob` takes `*`, `?` and `[...]`
(`[!...]` negates) and matches the whole text.

The same spec gives `test(event)` (online, compiled to closures) and `sql()` (offline, over `events`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

from kawa.streaming.errors import StreamError
from kawa.streaming.fields import BIGINT, DOUBLE, ID, JSON, TEXT, Field, access_source

Test = Callable[[dict[str, Any]], bool]

OPERATORS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "glob", "exists")
_SQL_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _is_number(v: object) -> bool:
    return type(v) is int or type(v) is float


def _sql_text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _sql_double(x: float) -> str:
    # repr round-trips every finite double, and DuckDB parses it back to the same one.
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def glob_regex(pattern: str) -> str:
    """A glob as a regular expression that Python's `re` and DuckDB's RE2 read the same way.

    >>> glob_regex("https://shop.example/items/*")
    '(?s)https\\\\:\\\\/\\\\/shop\\\\.example\\\\/items\\\\/.*'
    """
    out = ["(?s)"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif (
            c == "["
            and (end := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)) > 0
        ):
            body = pattern[i + 1 : end]
            neg = body.startswith("!")
            body = body[1:] if neg else body
            # Inside a class only '-' between two characters is special; escape every other punctuation.
            chars = "".join(ch if ch.isalnum() or ch == "-" or not ch.isascii() else "\\" + ch for ch in body)
            out.append(("[^" if neg else "[") + chars + "]")
            i = end
        else:
            out.append(c if c.isalnum() or c == " " or not c.isascii() else "\\" + c)
        i += 1
    return "".join(out)


class _Cond:
    """One operator on one field: a Python expression over the field's value `v`, and its SQL."""

    __slots__ = ("expr", "sql")

    def __init__(self, expr: str, sql: str) -> None:
        self.expr = expr
        self.sql = sql


class _Consts:
    """Constants the generated test refers to by name (sets, patterns, numbers).

    Names are unique across filters (`_k<filter>_<n>`), so several filters' lines can share one
    generated function (`Match.guard`).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.prefix = f"_k{next(_filters)}_"

    def __call__(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return name


_filters = itertools.count()


# Python lines that turn the value `v` read at a typed column into the column's type (None otherwise).
_COERCE = {
    TEXT: ["if type(v) is not str: v = None"],
    ID: ["if type(v) is int: v = str(v)", "elif type(v) is not str: v = None"],
    DOUBLE: ["if type(v) is int: v = float(v)", "elif type(v) is not float: v = None"],
    BIGINT: ["if type(v) is not int: v = None"],
    JSON: [],
}


class Match:
    """A checked filter over events: `test(event)` online and `sql()` over the lake's `events` table.

    >>> m = Match.from_spec({"event_name": ["view", "cart_add"], "price": {"gte": 10}})
    >>> m.test({"event_name": "view", "price": 12.5}), m.test({"event_name": "view", "price": 3})
    (True, False)
    >>> Match.from_spec({"page": {"glob": "*/items/*"}}).test({"page": "https://s.example/items/i_1"})
    True
    >>> Match.from_spec(None).sql()
    'TRUE'
    """

    __slots__ = ("_conds", "_consts", "_guards", "source", "spec", "test")

    def __init__(self, spec: Mapping[str, Any] | None = None, *, where: str = "") -> None:
        at = f"{where}: " if where else ""
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise StreamError(
                f"{at}a filter must be a mapping of field to condition, e.g. {{'event_name': 'view'}}, "
                f"not {type(spec).__name__}"
            )
        self.spec: dict[str, Any] = dict(spec)
        self._conds: list[_Cond] = []
        consts = _Consts()
        lines = []
        # Per field: the lines that leave its value in `v`, and the condition on `v`.
        self._guards: list[tuple[list[str], str]] = []
        for path, cond in self.spec.items():
            field = Field(path, where=where)
            conds = [
                _compile(field, op, operand, at, consts) for op, operand in _operators(cond, path, at).items()
            ]
            self._conds += conds
            read = access_source(field.parts) + _COERCE[field.kind]
            test = " and ".join(c.expr for c in conds)
            self._guards.append((read, test))
            lines += [*read, f"if not ({test}): return False"]
        self._consts = consts.values
        # One generated function per filter: no call per field or per condition on the hot path.
        self.source = "def test(e):\n" + "".join(f"    {line}\n" for line in [*lines, "return True"])
        namespace = dict(consts.values)
        exec(self.source, namespace)  # field names are checked plain names; operands are constants
        self.test: Test = namespace["test"]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | Match | None, *, where: str = "") -> Match:
        """A Match from a mapping (parsed YAML or JSON), None (every event), or a Match (itself)."""
        return spec if isinstance(spec, Match) else cls(spec, where=where)

    def sql(self) -> str:
        """The filter as a SQL condition over `events` (never NULL: TRUE or FALSE)."""
        if not self._conds:
            return "TRUE"
        return " AND ".join(f"coalesce({c.sql}, FALSE)" for c in self._conds)

    @property
    def matches_all(self) -> bool:
        return not self._conds

    def guard(self, body: list[str]) -> tuple[list[str], dict[str, Any]]:
        """Source lines running `body` only for an event `e` this filter matches, and the constants they name.

        For generated code that tests filters without a call per event; the lines use the variable `v`.

        >>> lines, consts = Match({"event_name": "view"}).guard(["hit = True"])
        >>> namespace = {**consts, "e": {"event_name": "view"}, "hit": False}
        >>> exec("\\n".join(lines), namespace)
        >>> namespace["hit"]
        True
        """
        lines: list[str] = []
        indent = ""
        for read, test in self._guards:
            lines += [indent + line for line in read]
            lines.append(f"{indent}if {test}:")
            indent += "    "
        lines += [indent + line for line in body]
        return lines, dict(self._consts)

    def __repr__(self) -> str:
        return f"Match({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Match) and repr(self.spec) == repr(other.spec)

    def __hash__(self) -> int:
        return hash(repr(self.spec))


def _operators(cond: Any, path: str, at: str) -> dict[str, Any]:
    if isinstance(cond, Mapping):
        if not cond:
            raise StreamError(f"{at}field {path!r}: empty condition; give e.g. {{'eq': 'view'}}")
        unknown = [k for k in cond if k not in OPERATORS]
        if unknown:
            raise StreamError(
                f"{at}field {path!r}: unknown operator {unknown[0]!r}; use one of: {', '.join(OPERATORS)}"
            )
        return dict(cond)
    if isinstance(cond, list | tuple):
        return {"in": list(cond)}
    return {"eq": cond}


def _check_operand(field: Field, op: str, v: Any, at: str) -> Any:
    """`v` converted to the field's type, or a StreamError naming the field and what to write."""
    name = field.path
    if isinstance(v, bool) and field.kind != JSON:
        raise StreamError(f"{at}field {name!r}: {v!r} cannot compare with a typed column; give a value")
    if field.kind in (TEXT, ID):
        if type(v) is int and field.kind == ID:
            return str(v)
        if not isinstance(v, str):
            raise StreamError(f"{at}field {name!r} is text; {op} needs text, not {v!r}")
        return v
    if field.kind in (DOUBLE, BIGINT):
        if not _is_number(v):
            raise StreamError(f"{at}field {name!r} is a number; {op} needs a number, not {v!r}")
        return float(v)
    if isinstance(v, bool | str):
        return v
    if _is_number(v):
        return float(v)
    raise StreamError(f"{at}field {name!r}: {op} needs text, a number or true/false, not {v!r}")


def _json_path(field: Field) -> str:
    return f"'$.{'.'.join(field.parts)}'"


def _compile(field: Field, op: str, operand: Any, at: str, k: _Consts) -> _Cond:
    present = f"({field.sql_raw()}) IS NOT NULL"
    if field.kind == JSON:
        present = f"coalesce({field.sql_json_type()} <> 'NULL', FALSE)"
    if op == "exists":
        if not isinstance(operand, bool):
            raise StreamError(f"{at}field {field.path!r}: exists takes true or false, not {operand!r}")
        return _Cond("v is not None", present) if operand else _Cond("v is None", f"NOT ({present})")
    if op in ("eq", "ne", "in"):
        if op == "in":
            if not isinstance(operand, list | tuple) or not operand:
                raise StreamError(f"{at}field {field.path!r}: in takes a non-empty list, not {operand!r}")
            values = [_check_operand(field, op, v, at) for v in operand]
        else:
            values = [_check_operand(field, op, operand, at)]
        eq = _equals(field, values, k)
        if op != "ne":
            return eq
        return _Cond(f"(v is not None and not ({eq.expr}))", f"({present} AND NOT ({eq.sql}))")
    if op in _SQL_CMP:
        v = _check_operand(field, op, operand, at)
        if isinstance(v, bool):
            raise StreamError(f"{at}field {field.path!r}: {op} needs text or a number, not {v!r}")
        return _compare(field, op, v, at, k)
    if op == "glob":
        if not isinstance(operand, str) or field.kind in (DOUBLE, BIGINT):
            raise StreamError(f"{at}field {field.path!r}: glob needs a text field and a text pattern")
        rx = glob_regex(operand)
        full = k(re.compile(rx).fullmatch)
        if field.kind == JSON:
            return _Cond(
                f"(type(v) is str and {full}(v) is not None)",
                f"({_text_of(field)} AND regexp_full_match(json_extract_string(properties, "
                f"{_json_path(field)}), {_sql_text(rx)}))",
            )
        return _Cond(
            f"(v is not None and {full}(v) is not None)",
            f"regexp_full_match({field.sql_raw()}, {_sql_text(rx)})",
        )
    raise AssertionError(op)


def _text_of(field: Field) -> str:
    return f"({field.sql_json_type()} = 'VARCHAR')"


def _number_of(field: Field) -> str:
    return f"({field.sql_json_type()} IN ('BIGINT', 'UBIGINT', 'DOUBLE'))"


def _equals(field: Field, values: list[Any], k: _Consts) -> _Cond:
    """Equality with any of `values` (already of the field's type)."""
    if field.kind != JSON:
        col = field.sql_raw()
        if field.kind in (DOUBLE, BIGINT):
            sql = " OR ".join(f"CAST({col} AS DOUBLE) = {_sql_double(v)}" for v in values)
            if field.kind == DOUBLE:
                return _Cond(f"v in {k(frozenset(values))}", f"({sql})")
            return _Cond(f"(v is not None and float(v) in {k(frozenset(values))})", f"({sql})")
        if len(values) == 1:
            return _Cond(f"v == {k(values[0])}", f"{col} = {_sql_text(values[0])}")
        listed = ", ".join(_sql_text(v) for v in values)
        return _Cond(f"v in {k(frozenset(values))}", f"{col} IN ({listed})")
    jp = _json_path(field)
    strs = frozenset(v for v in values if isinstance(v, str))
    nums = frozenset(v for v in values if isinstance(v, float))
    bools = frozenset(v for v in values if isinstance(v, bool))
    exprs, parts = [], []
    if strs:
        exprs.append(f"(type(v) is str and v in {k(strs)})")
        listed = ", ".join(_sql_text(s) for s in sorted(strs))
        parts.append(f"({_text_of(field)} AND json_extract_string(properties, {jp}) IN ({listed}))")
    if nums:
        exprs.append(f"((type(v) is int or type(v) is float) and float(v) in {k(nums)})")
        listed = ", ".join(_sql_double(x) for x in sorted(nums))
        parts.append(
            f"({_number_of(field)} AND TRY_CAST(json_extract(properties, {jp}) AS DOUBLE) IN ({listed}))"
        )
    if bools:
        exprs.append(f"(type(v) is bool and v in {k(bools)})")
        listed = ", ".join("'true'" if b else "'false'" for b in sorted(bools))
        parts.append(
            f"({field.sql_json_type()} = 'BOOLEAN' AND json_extract_string(properties, {jp}) IN ({listed}))"
        )
    return _Cond("(" + " or ".join(exprs) + ")", "(" + " OR ".join(parts) + ")")


def _compare(field: Field, op: str, v: str | float, at: str, k: _Consts) -> _Cond:
    py = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    sym = _SQL_CMP[op]
    if isinstance(v, str):
        if field.kind in (DOUBLE, BIGINT):
            raise StreamError(f"{at}field {field.path!r} is a number; {op} needs a number, not {v!r}")
        if field.kind == JSON:
            text = f"json_extract_string(properties, {_json_path(field)})"
            sql = f"({_text_of(field)} AND {text} {sym} {_sql_text(v)})"
            return _Cond(f"(type(v) is str and v {py} {k(v)})", sql)
        return _Cond(f"(v is not None and v {py} {k(v)})", f"{field.sql_raw()} {sym} {_sql_text(v)}")
    if field.kind in (TEXT, ID):
        raise StreamError(f"{at}field {field.path!r} is text; {op} needs text, not {v!r}")
    if field.kind == JSON:
        sql = (
            f"({_number_of(field)} AND TRY_CAST(json_extract(properties, {_json_path(field)}) AS DOUBLE) "
            f"{sym} {_sql_double(v)})"
        )
        return _Cond(f"((type(v) is int or type(v) is float) and float(v) {py} {k(v)})", sql)
    return _Cond(
        f"(v is not None and float(v) {py} {k(v)})",
        f"CAST({field.sql_raw()} AS DOUBLE) {sym} {_sql_double(v)}",
    )
