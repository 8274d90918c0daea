"""How deep a JSON text nests, and its top-level array items, found without parsing (so without recursion).

Parsers recurse once per level, so a body 100,000 levels deep must be measured and cut apart before any
parser sees it; these functions only scan bytes.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np

_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
# A whole string (escapes included), a bracket or comma, or a quote that opens a string never closed.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+"|[\[\]{},"]', re.DOTALL)


class NotJSON(ValueError):
    """The text is not a JSON array; the message says where it breaks."""


def pseudo_depth(data: bytes) -> int:
    """The deepest bracket nesting in `data`, counting brackets inside strings too (cheap, in C/NumPy).

    >>> pseudo_depth(b'[{"a": [1]}, "]]]"]')
    3
    """
    marks = np.frombuffer(data.translate(None, _BRACKETS), dtype=np.uint8)
    if marks.size == 0:
        return 0
    steps = np.where((marks == 0x5B) | (marks == 0x7B), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def top_level_items(array: bytes) -> list[bytes]:
    """The text of each item of the JSON array `array`, however deep the items nest.

    Strings are skipped whole, so brackets and commas inside them do not count; the items themselves
    are not checked (a parser does that, once each is known to be shallow enough); NotJSON when the
    array itself is broken.

    >>> top_level_items(b' [ {"a": "],"}, [[1, 2]] , 3 ] ')
    [b'{"a": "],"}', b'[[1, 2]]', b'3']
    """
    items: list[bytes] = []
    depth = 0
    start = 0
    for token in _TOKENS.finditer(array):
        mark = token.group()
        if mark == b'"':
            raise NotJSON("a string is never closed")
        if mark in (b"[", b"{"):
            depth += 1
            if depth == 1:
                start = token.end()
        elif mark in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                items.append(array[start : token.start()].strip())
                if array[token.end() :].strip():
                    raise NotJSON(f"text follows the array's end at byte {token.end()}")
                return [] if items == [b""] else items
        elif mark == b"," and depth == 1:
            items.append(array[start : token.start()].strip())
            start = token.end()
    raise NotJSON("the array is never closed")


_KEY = re.compile(rb'\s*("(?:[^"\\]|\\.)*+")\s*:(.*)', re.DOTALL)


def shallow_batch(body: bytes, max_depth: int) -> tuple[dict[str, Any], set[int]]:
    """A Segment batch body (`{"batch": [...], ...}`) whose messages may nest too deep: the body parsed,
    with each message deeper than `max_depth` replaced by None, and the indexes of those messages.

    NotJSON when the body is not such an object, or a part other than a message is too deep.

    >>> shallow_batch(b'{"batch": [{"a": 1}, [[[[2]]]]], "sentAt": "x"}', 2)
    ({'batch': [{'a': 1}, None], 'sentAt': 'x'}, {1})
    """
    if not body.lstrip().startswith(b"{"):
        raise NotJSON("the body is not a JSON object")
    parsed: dict[str, Any] = {}
    deep: set[int] = set()
    for member in top_level_items(body):
        found = _KEY.fullmatch(member)
        if found is None:
            raise NotJSON('an object member is not `"name": value`')
        name, value = _decode(found.group(1)), found.group(2)
        if name != "batch" or not value.lstrip().startswith(b"["):
            if pseudo_depth(value) > max_depth:
                raise NotJSON(f"{name!r} is nested deeper than {max_depth} levels")
            parsed[name] = _decode(value)
            continue
        messages = top_level_items(value)
        deep |= {i for i, message in enumerate(messages) if pseudo_depth(message) > max_depth}
        parsed[name] = [None if i in deep else _decode(m) for i, m in enumerate(messages)]
    return parsed, deep


def _decode(text: bytes) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise NotJSON(str(exc)) from None
