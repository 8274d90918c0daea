"""The examples in the streaming modules' docstrings run, so the docs cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "kawa.streaming.engine",
    "kawa.streaming.fields",
    "kawa.streaming.match",
    "kawa.streaming.spec",
    "kawa.streaming.view",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
