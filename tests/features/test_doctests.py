"""The examples in the features modules' docstrings run, so the docs cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "kawa.features._time",
    "kawa.features.entity",
    "kawa.features.label",
    "kawa.features.materialize",
    "kawa.features.spec",
    "kawa.features.view",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
