"""What goes wrong with a SQL model statement: the message names the statement's problem and the fix."""

from __future__ import annotations

from kawa.warehouse import SQLError


class SQLModelError(SQLError):
    """A CREATE MODEL, DROP MODEL or ML.* call that cannot run; a SQLError, so the faces answer 400."""


def place(sql: str, offset: int) -> str:
    """Where `offset` is in `sql`, as "line L, column C" (both from 1).

    >>> place("SELECT 1,\\n  'x", 12)
    'line 2, column 3'
    """
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"
