"""One real `kawa serve` for the hardening tests (key scopes, hostile requests, schema fuzz).

Its slow-body timeouts are short so the tests that trickle a body in wait a few seconds, not a minute.
Its folder holds one small pipeline, `matrix`, whose runs write the table `matrix_out`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from tests.conftest import Server

IDLE_S, TOTAL_S = 1.5, 4.0  # ingest.body_idle_timeout_s and ingest.body_timeout_s of this server
TABLE = "matrix_out"
PIPELINE = f"""
import pyarrow as pa

from kawa.pipelines import Pipeline, RunContext, step


@step
def out(ctx: RunContext, scale: float) -> int:
    ctx.write_table("{TABLE}", pa.table({{"user_id": ["someone"], "score": [scale]}}))
    ctx.outputs["tables"] = ["{TABLE}"]
    return 1


matrix = Pipeline("matrix", steps=[out], params={{"scale": 1.0}})
"""


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"KAWA__INGEST__BODY_IDLE_TIMEOUT_S": str(IDLE_S), "KAWA__INGEST__BODY_TIMEOUT_S": str(TOTAL_S)}
    srv = Server(tmp_path_factory.mktemp("hardening"), env=env)
    (srv.root / "pipelines.py").write_text(textwrap.dedent(PIPELINE))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
