"""Rows from text: a web form's fields typed by a model's human-readable input signature.

A form sends every value as text; the model wants numbers as numbers, lists as lists and blanks as
null. The signature (`Bundle.signature["inputs"]`, kept with each registered version) says which is
which, so the same form works for any model.

>>> inputs = [{"name": "age", "type": "number"}, {"name": "media", "type": "string"},
...           {"name": "vip", "type": "boolean"}, {"name": "pages", "type": "array"}]
>>> row_from_text(inputs, {"age": "34", "media": "Twitter", "vip": "true", "pages": "home, cart"})
{'age': 34.0, 'media': 'Twitter', 'vip': True, 'pages': ['home', 'cart']}
>>> row_from_text(inputs, {"age": ""})
{'age': None, 'media': None, 'vip': None, 'pages': None}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kawa.models.errors import RowError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SEPARATORS = re.compile(r"[,\s]+")


def row_from_text(inputs: Sequence[Mapping[str, Any]], values: Mapping[str, str]) -> dict[str, Any]:
    """A row with every input of the signature, each text value typed as the input wants it (blank or
    absent: null); RowError naming the field whose text is not of its type."""
    return {field["name"]: _typed(field, values.get(field["name"], "")) for field in inputs}


def text_value(value: Any) -> str:
    """A row value as the text a form field shows (the inverse of `row_from_text`, for defaults).

    >>> text_value(["home", "cart"]), text_value(None), text_value(3.0), text_value(2 / 3), text_value(True)
    ('home, cart', '', '3', '0.666667', 'true')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # Six significant digits: a readable default that parses back to nearly the same number.
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _typed(field: Mapping[str, Any], text: str) -> Any:
    name, kind = field["name"], field.get("type")
    text = (text or "").strip()
    if not text:
        return None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise RowError(name, f"must be a number; got {text!r}") from None
        if not math.isfinite(number):
            raise RowError(name, f"must be a finite number; got {text!r}")
        return number
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise RowError(name, f"must be a whole number; got {text!r}") from None
    if kind == "boolean":
        lowered = text.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise RowError(name, f"must be true or false; got {text!r}")
    if kind == "array":
        return [token for token in _SEPARATORS.split(text) if token]
    return text  # strings and ISO date-times go to the model as they are
