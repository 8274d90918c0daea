"""What the query inside an ML.* call can see of the statement around it: the WITH clause's common table
expressions defined before the call, so `WITH feats AS (...) SELECT * FROM ML.PREDICT(MODEL m, (SELECT *
FROM feats))` works although the call's query runs on its own.

>>> visible("WITH a AS (SELECT 1 x), b AS (SELECT x FROM a) SELECT 1", 60, "SELECT * FROM b")
'WITH a AS (SELECT 1 x), b AS (SELECT x FROM a) SELECT * FROM b'
>>> visible("WITH a AS (SELECT 1 x) SELECT 1", 30, "WITH c AS (SELECT 2) SELECT * FROM a, c")
'WITH a AS (SELECT 1 x), c AS (SELECT 2) SELECT * FROM a, c'
"""

from __future__ import annotations

from dataclasses import dataclass

from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.parse import brackets
from kawa.sqlml.scan import Token, tokenize


@dataclass(frozen=True)
class WithClause:
    """A statement's leading WITH clause: whether RECURSIVE, and each definition's span in the text."""

    recursive: bool
    spans: list[tuple[int, int]]


def with_clause(sql: str) -> WithClause | None:
    """The WITH clause `sql` starts with; None if it has none (or one this reader does not follow)."""
    try:
        tokens = tokenize(sql)
        pairs = brackets(sql, tokens)
    except SQLModelError:
        return None
    if not tokens or not tokens[0].word("WITH"):
        return None
    recursive = len(tokens) > 1 and tokens[1].word("RECURSIVE")
    i = 2 if recursive else 1
    spans: list[tuple[int, int]] = []
    while i < len(tokens):
        start, i = tokens[i].start, i + 1  # the name
        if _is(tokens, i, "("):
            i = pairs[i] + 1  # its column names
        if not (i < len(tokens) and tokens[i].word("AS")):
            return None
        i += 1
        while i < len(tokens) and tokens[i].word("NOT", "MATERIALIZED"):
            i += 1
        if not _is(tokens, i, "("):
            return None
        close = pairs[i]
        spans.append((start, tokens[close].end))
        i = close + 1
        if not _is(tokens, i, ","):
            break
        i += 1
    return WithClause(recursive, spans)


def visible(sql: str, position: int, query: str) -> str:
    """`query` (of an ML.* call at `position` in `sql`) behind the definitions of `sql`'s WITH clause
    that end before the call, joined with the query's own WITH clause if it has one."""
    clause = with_clause(sql)
    if clause is None:
        return query
    spans = [(start, end) for start, end in clause.spans if end <= position]
    if not spans:
        return query
    definitions = ", ".join(sql[start:end] for start, end in spans)
    own = tokenize(query)
    recursive = clause.recursive
    if own and own[0].word("WITH"):
        inner_recursive = len(own) > 1 and own[1].word("RECURSIVE")
        rest = query[own[2 if inner_recursive else 1].start :] if len(own) > 1 else ""
        recursive = recursive or inner_recursive
        return f"WITH {'RECURSIVE ' if recursive else ''}{definitions}, {rest}"
    return f"WITH {'RECURSIVE ' if recursive else ''}{definitions} {query}"


def _is(tokens: list[Token], i: int, char: str) -> bool:
    return i < len(tokens) and tokens[i].symbol(char)
