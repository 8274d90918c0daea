"""The examples in the bandits package's docstrings run, so the docs cannot rot."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "kawa.bandits",
        "kawa.bandits.policies",
        "kawa.bandits.spec",
        "kawa.bandits.report",
        "kawa.bandits.rewards",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
