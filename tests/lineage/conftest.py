"""A runtime in a temporary project folder for lineage tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.runtime import Runtime
from tests.pipelines.conftest import make_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path)
    try:
        yield rt
    finally:
        rt.close()
