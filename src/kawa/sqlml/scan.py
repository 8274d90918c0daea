"""The SQL scanner: the text as tokens that know where they stand, so statements can be cut apart and
ML.* calls rewritten without ever looking inside a string, a quoted name or a comment.

It knows DuckDB's lexical forms (and BigQuery's backquoted names): 'strings' with '' inside,
E'escaped \\' strings', $$dollar$$ and $tag$dollar$tag$ strings, "quoted" and `backquoted` names,
-- line and /* nested */ block comments, numbers, words, $1 and $name parameters, and single
characters for everything else.

>>> [t.text for t in tokenize("SELECT 'it''s' -- note\\nFROM \\"my table\\"")]
['SELECT', "it's", 'FROM', 'my table']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kawa.sqlml.errors import SQLModelError, place

TokenKind = Literal["word", "name", "string", "number", "param", "symbol"]

_WORD = re.compile(r"[^\W\d]\w*", re.UNICODE)
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$", re.UNICODE)
_PARAM = re.compile(r"\$(?:\d+|[^\W\d]\w*)", re.UNICODE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its value (a string's or quoted name's text unquoted), its span in the SQL."""

    kind: TokenKind
    text: str
    start: int
    end: int

    def word(self, *words: str) -> bool:
        """Whether this is a bare word equal to one of `words` (which are upper case), in any case."""
        return self.kind == "word" and self.text.upper() in words

    def symbol(self, char: str) -> bool:
        return self.kind == "symbol" and self.text == char


def tokenize(sql: str) -> list[Token]:
    """The tokens of `sql`, comments and white space left out; SQLModelError for an unclosed
    string, quoted name or comment."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i = _SPACE.match(sql, i).end()  # type: ignore[union-attr]
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _block_comment(sql, i)
        elif c == "'":
            text, end = _quoted(sql, i, "'", "string")
            tokens.append(Token("string", text, i, end))
            i = end
        elif c in "eE" and sql.startswith("'", i + 1):
            text, end = _escaped(sql, i + 1)
            tokens.append(Token("string", text, i, end))
            i = end
        elif c == '"' or c == "`":
            text, end = _quoted(sql, i, c, "quoted name")
            tokens.append(Token("name", text, i, end))
            i = end
        elif c == "$":
            i = _dollar(sql, i, tokens)
        elif (m := _NUMBER.match(sql, i)) and m.end() > i:
            tokens.append(Token("number", m.group(), i, m.end()))
            i = m.end()
        elif (m := _WORD.match(sql, i)) and m.end() > i:
            tokens.append(Token("word", m.group(), i, m.end()))
            i = m.end()
        else:
            tokens.append(Token("symbol", c, i, i + 1))
            i += 1
    return tokens


def _quoted(sql: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """The text between `quote`s starting at `start` (a doubled quote stands for one), and where it ends."""
    parts: list[str] = []
    i = start + 1
    while True:
        end = sql.find(quote, i)
        if end < 0:
            raise SQLModelError(f"unclosed {what} starting at {place(sql, start)}: add the closing {quote}")
        parts.append(sql[i:end])
        if sql.startswith(quote, end + 1):
            parts.append(quote)
            i = end + 2
        else:
            return "".join(parts), end + 1


def _escaped(sql: str, start: int) -> tuple[str, int]:
    """An E'...' string from its opening quote: a backslash escapes the next character."""
    parts: list[str] = []
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if c == "\\" and i + 1 < len(sql):
            parts.append(sql[i + 1])
            i += 2
        elif c == "'" and sql.startswith("'", i + 1):
            parts.append("'")
            i += 2
        elif c == "'":
            return "".join(parts), i + 1
        else:
            parts.append(c)
            i += 1
    raise SQLModelError(f"unclosed string starting at {place(sql, start - 1)}: add the closing '")


def _block_comment(sql: str, start: int) -> int:
    """Where the /* comment */ at `start` ends; block comments nest, as in PostgreSQL and DuckDB."""
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SQLModelError(f"unclosed comment starting at {place(sql, start)}: add the closing */")


def _dollar(sql: str, start: int, tokens: list[Token]) -> int:
    """A $tag$ string, a $1 or $name parameter, or a lone $ at `start`; returns where it ends."""
    if tag := _DOLLAR_TAG.match(sql, start):
        close = sql.find(tag.group(), tag.end())
        if close < 0:
            mark = tag.group()
            raise SQLModelError(
                f"unclosed {mark} string starting at {place(sql, start)}: add the closing {mark}"
            )
        end = close + len(tag.group())
        tokens.append(Token("string", sql[tag.end() : close], start, end))
        return end
    if param := _PARAM.match(sql, start):
        tokens.append(Token("param", param.group(), start, param.end()))
        return param.end()
    tokens.append(Token("symbol", "$", start, start + 1))
    return start + 1
