"""`import kawa` stays light: the notebook layer, DataFrame libraries and DuckDB load on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kawa


def test_import_kawa_loads_no_heavy_module() -> None:
    code = (
        "import sys, kawa; heavy = ('kawa.notebook', 'pandas', 'polars', 'duckdb', 'pyarrow', 'httpx'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_connect_is_the_notebook_connect() -> None:
    from kawa.notebook import connect

    assert kawa.connect is connect
    assert "connect" in kawa.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = kawa.nothing  # type: ignore[attr-defined]
