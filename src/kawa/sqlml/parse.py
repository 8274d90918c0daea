"""The statements and table functions kawa adds to the warehouse's SQL, parsed from scanner tokens.

    CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name [OPTIONS (key = value, ...)] AS query
    DROP MODEL [IF EXISTS] name
    ML.PREDICT(MODEL name, {(query) | TABLE table} [, STRUCT(value AS setting, ...)])
    ML.EVALUATE(MODEL name [, {(query) | TABLE table}] [, STRUCT(...)])
    ML.CENTROIDS(MODEL name [, STRUCT(...)])

Everything else is DuckDB's: a statement without these passes through untouched.

>>> [type(s).__name__ for s in split("CREATE MODEL m OPTIONS (model_type='kmeans') AS SELECT 1; SELECT 2")]
['CreateModel', 'Query']
>>> [(c.function, c.model, c.query) for c in ml_calls("SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1 x))")]
[('PREDICT', 'm', 'SELECT 1 x')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from kawa.sqlml.errors import SQLModelError, place
from kawa.sqlml.scan import Token, tokenize

Value: TypeAlias = "str | int | float | bool | list[Value] | None"

# Each ML.* function: whether it takes a query (True: required, None: optional, False: never).
FUNCTIONS: dict[str, bool | None] = {"PREDICT": True, "EVALUATE": None, "CENTROIDS": False}
_OPENING = {")": "(", "]": "["}


@dataclass(frozen=True)
class CreateModel:
    name: str
    query: str
    options: dict[str, Value] = field(default_factory=dict)
    replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropModel:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class Query:
    """Any other statement: DuckDB runs it once its ML.* calls are replaced by their results."""

    text: str


Statement: TypeAlias = CreateModel | DropModel | Query


@dataclass(frozen=True)
class MLCall:
    """One ML.* call: the model, the query it reads (None if none), its STRUCT settings, its span."""

    function: str
    model: str
    query: str | None
    settings: dict[str, Value]
    start: int
    end: int


def mentions_models(sql: str) -> bool:
    """Whether `sql` has a CREATE MODEL, DROP MODEL or ML.* call (False for text the scanner cannot
    read, which DuckDB will then explain).

    >>> mentions_models("SELECT 'CREATE MODEL' AS model FROM events"), mentions_models("DROP MODEL m")
    (False, True)
    """
    upper = sql.upper()
    if "MODEL" not in upper and "ML" not in upper:
        return False
    try:
        tokens = tokenize(sql)
    except SQLModelError:
        return False
    for i, token in enumerate(tokens):
        if token.word("MODEL") and i > 0 and tokens[i - 1].word("CREATE", "REPLACE", "DROP"):
            return True
        if _call_at(tokens, i):
            return True
    return False


def split(sql: str) -> list[Statement]:
    """The statements of `sql` (separated by top-level semicolons), parsed."""
    tokens = tokenize(sql)
    groups: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "symbol" and token.text in "([":
            depth += 1
        elif token.kind == "symbol" and token.text in ")]":
            depth -= 1
        elif token.symbol(";") and depth <= 0:
            groups.append([])
            continue
        groups[-1].append(token)
    return [_statement(sql, group) for group in groups if group]


def ml_calls(sql: str) -> list[MLCall]:
    """The outermost ML.* calls in `sql`, in order (calls nested in their queries are left inside)."""
    tokens = tokenize(sql)
    pairs = brackets(sql, tokens)
    calls: list[MLCall] = []
    i = 0
    while i < len(tokens):
        if _call_at(tokens, i):
            close = pairs[i + 3]
            calls.append(_call(_Cursor(sql, tokens[i : close + 1], pairs, i)))
            i = close + 1
        else:
            i += 1
    return calls


def _call_at(tokens: list[Token], i: int) -> bool:
    return (
        i + 3 < len(tokens)
        and tokens[i].word("ML")
        and tokens[i + 1].symbol(".")
        and tokens[i + 2].kind == "word"
        and tokens[i + 3].symbol("(")
        and not (i > 0 and tokens[i - 1].symbol("."))
    )


def brackets(sql: str, tokens: list[Token]) -> dict[int, int]:
    """Index of each opening ( or [ -> index of its closing one; SQLModelError if unbalanced."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, token in enumerate(tokens):
        if token.kind != "symbol":
            continue
        if token.text in "([":
            stack.append(i)
        elif token.text in ")]":
            if not stack or tokens[stack[-1]].text != _OPENING[token.text]:
                raise SQLModelError(f"unexpected {token.text!r} at {place(sql, token.start)}")
            pairs[stack.pop()] = i
    if stack:
        opened = tokens[stack[-1]]
        raise SQLModelError(f"{opened.text!r} at {place(sql, opened.start)} is never closed")
    return pairs


class _Cursor:
    """Reads one statement's or call's tokens; `base` is the index of its first token in `pairs`."""

    def __init__(self, sql: str, tokens: list[Token], pairs: dict[int, int] | None = None, base: int = 0):
        self.sql = sql
        self.tokens = tokens
        self.pairs = pairs if pairs is not None else brackets(sql, tokens)
        self.base = base
        self.i = 0

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            end = self.tokens[-1].end if self.tokens else 0
            raise SQLModelError(f"expected {what} at {place(self.sql, end)}, but the statement ends there")
        self.i += 1
        return token

    def accept(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.word(*words):
            self.i += 1
            return True
        return False

    def expect(self, word: str, what: str | None = None) -> None:
        token = self.take(what or word)
        if not token.word(word):
            raise self.unexpected(token, what or word)

    def expect_symbol(self, char: str) -> Token:
        token = self.take(f"'{char}'")
        if not token.symbol(char):
            raise self.unexpected(token, f"'{char}'")
        return token

    def unexpected(self, token: Token, wanted: str) -> SQLModelError:
        found = self.sql[token.start : token.end]
        return SQLModelError(f"expected {wanted} at {place(self.sql, token.start)}, found {found!r}")

    def closing(self) -> int:
        """Cursor index of the bracket closing the one just before the cursor."""
        return self.pairs[self.base + self.i - 1] - self.base

    def model_name(self) -> str:
        """A model name: a word or quoted name, or several joined by dots (`dataset.model`)."""
        parts = [self._name_part("a model name")]
        while (dot := self.peek()) is not None and dot.symbol(".") and self.peek(1) is not None:
            self.i += 1
            parts.append(self._name_part("a name after '.'"))
        return ".".join(parts)

    def _name_part(self, what: str) -> str:
        token = self.take(what)
        if token.kind not in ("word", "name"):
            raise self.unexpected(token, what)
        return token.text

    def value(self, what: str) -> Value:
        """A literal: 'text', a number, TRUE, FALSE, NULL or a [list] (ARRAY[...] too)."""
        token = self.take(what)
        if token.kind == "string":
            return token.text
        if token.kind == "number":
            return _number(token.text)
        if token.symbol("-") or token.symbol("+"):
            number = self.take(what)
            if number.kind != "number":
                raise self.unexpected(number, what)
            value = _number(number.text)
            return -value if token.text == "-" else value
        if token.word("TRUE", "FALSE"):
            return token.text.upper() == "TRUE"
        if token.word("NULL"):
            return None
        if token.word("ARRAY") and (bracket := self.peek()) is not None and bracket.symbol("["):
            token = self.take("[")
        if token.symbol("["):
            items: list[Value] = []
            end = self.closing()
            while self.i < end:
                items.append(self.value(what))
                if self.i < end:
                    self.expect_symbol(",")
            self.i = end + 1
            return items
        raise self.unexpected(token, what)


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    return int(clean) if clean.isdigit() else float(clean)


def _statement(sql: str, tokens: list[Token]) -> Statement:
    first, second = tokens[0], tokens[1] if len(tokens) > 1 else None
    if first.word("DROP") and second is not None and second.word("MODEL"):
        return _drop(_Cursor(sql, tokens))
    if first.word("CREATE") and any(t.word("MODEL") for t in tokens[1:4]):
        cursor = _Cursor(sql, tokens)
        cursor.take("CREATE")
        replace = cursor.accept("OR")
        if replace:
            cursor.expect("REPLACE")
        if cursor.accept("MODEL"):
            return _create(cursor, replace)
    return Query(sql[first.start : tokens[-1].end])


def _drop(cursor: _Cursor) -> DropModel:
    cursor.take("DROP")
    cursor.take("MODEL")
    if_exists = cursor.accept("IF")
    if if_exists:
        cursor.expect("EXISTS")
    name = cursor.model_name()
    if (extra := cursor.peek()) is not None:
        raise cursor.unexpected(extra, "the end of DROP MODEL")
    return DropModel(name, if_exists)


def _create(cursor: _Cursor, replace: bool) -> CreateModel:
    if_not_exists = cursor.accept("IF")
    if if_not_exists:
        cursor.expect("NOT")
        cursor.expect("EXISTS")
    if replace and if_not_exists:
        raise SQLModelError("CREATE OR REPLACE MODEL and IF NOT EXISTS contradict each other; use one")
    name = cursor.model_name()
    options: dict[str, Value] = {}
    while not cursor.accept("AS"):
        if cursor.peek() is None:
            break
        token = cursor.take("OPTIONS (...) or AS SELECT ...")
        if token.word("TRANSFORM", "INPUT", "OUTPUT", "REMOTE"):
            raise SQLModelError(
                f"CREATE MODEL {name}: the {token.text.upper()} clause is not supported; compute the "
                "columns the model needs in the AS SELECT ... query instead"
            )
        if not token.word("OPTIONS") or options:
            raise cursor.unexpected(token, "OPTIONS (...) or AS SELECT ...")
        options = _options(cursor, name)
    start = cursor.peek()
    if start is None:
        raise SQLModelError(f"CREATE MODEL {name}: AS needs the training query, e.g. AS SELECT * FROM t")
    query = cursor.sql[start.start : cursor.tokens[-1].end]
    return CreateModel(name, query, options, replace, if_not_exists)


def _options(cursor: _Cursor, model: str) -> dict[str, Value]:
    cursor.expect_symbol("(")
    end = cursor.closing()
    options: dict[str, Value] = {}
    while cursor.i < end:
        key_token = cursor.take("an option name")
        if key_token.kind not in ("word", "name"):
            raise cursor.unexpected(key_token, "an option name")
        key = key_token.text.lower()
        if key in options:
            raise SQLModelError(f"CREATE MODEL {model}: option {key} is given twice")
        cursor.expect_symbol("=")
        options[key] = cursor.value(f"a value for option {key} ('text', a number, TRUE/FALSE or [list])")
        if cursor.i < end:
            cursor.expect_symbol(",")
    cursor.i = end + 1
    return options


def _call(cursor: _Cursor) -> MLCall:
    """The ML.* call that the cursor's tokens hold, from ML to the closing parenthesis."""
    name_token = cursor.tokens[2]
    function = name_token.text.upper()
    label = f"ML.{function}"
    if function not in FUNCTIONS:
        known = ", ".join(f"ML.{f}" for f in FUNCTIONS)
        at = place(cursor.sql, name_token.start)
        raise SQLModelError(f"ML.{name_token.text} at {at} is not supported; kawa has {known}")
    cursor.i = 4
    end = len(cursor.tokens) - 1
    cursor.expect("MODEL", f"MODEL name as the first argument of {label}")
    model = cursor.model_name()
    query: str | None = None
    settings: dict[str, Value] | None = None
    while cursor.i < end:
        cursor.expect_symbol(",")
        token = cursor.take(f"another argument of {label}")
        if token.symbol("(") and query is None and settings is None:
            close = cursor.closing()
            query = cursor.sql[token.end : cursor.tokens[close].start].strip()
            cursor.i = close + 1
        elif token.word("TABLE") and query is None and settings is None:
            cursor.model_name()  # a table name has the same form
            query = f"SELECT * FROM {cursor.sql[token.end : cursor.tokens[cursor.i - 1].end].strip()}"
        elif token.word("STRUCT") and settings is None:
            settings = _struct(cursor, label)
        else:
            raise cursor.unexpected(token, f"(query), TABLE name or STRUCT(...) in {label}")
    takes = FUNCTIONS[function]
    if takes is True and query is None:
        raise SQLModelError(
            f"{label}(MODEL {model}, ...) needs the rows to score: add (SELECT ...) or TABLE t"
        )
    if takes is False and query is not None:
        raise SQLModelError(f"{label} takes no query: use {label}(MODEL {model})")
    first, last = cursor.tokens[0], cursor.tokens[-1]
    return MLCall(function, model, query, settings or {}, first.start, last.end)


def _struct(cursor: _Cursor, label: str) -> dict[str, Value]:
    cursor.expect_symbol("(")
    end = cursor.closing()
    settings: dict[str, Value] = {}
    while cursor.i < end:
        value = cursor.value(f"a literal value in {label}'s STRUCT")
        cursor.expect("AS", f"AS setting_name in {label}'s STRUCT, e.g. STRUCT(0.6 AS threshold)")
        key = cursor.take("a setting name")
        settings[key.text.lower()] = value
        if cursor.i < end:
            cursor.expect_symbol(",")
    cursor.i = end + 1
    return settings
