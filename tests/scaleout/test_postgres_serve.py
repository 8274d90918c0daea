"""`kawa serve` and the CLI with their metadata in PostgreSQL, end to end.

The project gets its metadata store from the environment (KAWA__STORES__METADATA=postgresql://...),
as a deployment that moves onto PostgreSQL with one line of kawa.yaml would: `kawa init` registers
its keys there, `kawa pipeline run` records its run there (its steps run in processes of their own),
and the server reads both back.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from kawa.auth import KeyRing
from kawa.pipelines import RunStore
from kawa.stores.metadata import open_metadata
from tests.conftest import Server, kawa

if TYPE_CHECKING:
    from tests.services.postgres import PostgresServer

pytest_plugins = ["tests.services.postgres"]

pytestmark = pytest.mark.slow

PIPELINES = """
from kawa.pipelines import Pipeline, RunContext, step

@step
def numbers(upto: int) -> list[int]:
    print(f"counting to {upto}")
    return list(range(upto))

@step
def total(numbers: list[int], ctx: RunContext) -> int:
    ctx.log_metric("total", sum(numbers))
    return sum(numbers)

daily = Pipeline("daily", steps=[total, numbers], params={"upto": 4})
"""


@pytest.fixture(scope="module")
def database(postgres: PostgresServer, postgres_template: str) -> Iterator[str]:
    """A database of this module's own, at the newest schema."""
    name = postgres.create_database(template=postgres_template)
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Server]:
    """`kawa serve` of a new project whose every kawa command (init, serve, pipeline, keys) uses `database`.

    The variable stays set while the module's tests run, so the commands they run use `database` too.
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KAWA__STORES__METADATA", database)
        root = tmp_path_factory.mktemp("postgres")
        server = Server(root)
        (root / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _get(server: Server, path: str, key: str) -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_keys_of_kawa_init_are_in_postgres_and_work(served: Server, database: str) -> None:
    with open_metadata(database, served.root) as metadata, KeyRing(metadata) as ring:
        assert ring.projects() == ["shop"]
        assert sorted(k["role"] for k in ring.list_keys("shop")) == ["admin", "read", "write"]
    assert _get(served, "/v1/runs", served.keys["read_key"]).json() == {"runs": []}
    assert _get(served, "/v1/runs", served.keys["write_key"]).status_code == 403
    bad = served.keys["read_key"][:-4] + "AAAA"
    assert _get(served, "/v1/runs", bad).status_code == 401
    assert not list(served.root.rglob("metadata.sqlite3")), "some part opened the embedded store"


def test_a_pipeline_run_from_the_cli_is_recorded_in_postgres_and_served(
    served: Server, database: str
) -> None:
    done = kawa("pipeline", "run", "daily", "-p", "upto=5", cwd=served.root)
    found = re.search(r"run ([0-9a-f]{20}) of pipeline", done.stdout)
    assert found is not None, done.stdout
    run_id = found.group(1)
    with open_metadata(database, served.root) as metadata:
        record = RunStore(metadata).get(run_id)
    assert record is not None and record.status == "succeeded" and record.metrics == {"total": 10}
    assert [s.step for s in record.steps] == ["numbers", "total"]
    listed = _get(served, "/v1/runs?pipeline=daily", served.keys["read_key"]).json()["runs"]
    assert [(r["run_id"], r["status"], r["metrics"]) for r in listed] == [
        (run_id, "succeeded", {"total": 10})
    ]
    shown = _get(served, f"/v1/runs/{run_id[:12]}", served.keys["admin_key"]).json()
    assert shown["run_id"] == run_id and [s["step"] for s in shown["steps"]] == ["numbers", "total"]
    assert shown["steps"][0]["status"] == "succeeded"
    logs = _get(served, f"/v1/runs/{run_id}/logs?step=numbers", served.keys["read_key"])
    assert logs.status_code == 200 and "counting to 5" in logs.text
    assert not list(served.root.rglob("metadata.sqlite3")), "some part opened the embedded store"


def test_keys_created_and_revoked_by_the_cli_work_and_stop_at_once(served: Server) -> None:
    web = served.add_project("web")  # `kawa keys create --project web` while the server runs
    assert _get(served, "/v1/runs", web["read_key"]).json() == {"runs": []}  # none of shop's runs
    runs = _get(served, "/v1/runs", served.keys["read_key"]).json()["runs"]
    for run in runs:
        assert _get(served, f"/v1/runs/{run['run_id']}", web["admin_key"]).status_code == 404
    kawa("keys", "revoke", web["read_key"], cwd=served.root)
    # The server learns of the revocation from PostgreSQL's notification, not from a timer.
    assert _get(served, "/v1/runs", web["read_key"]).status_code == 401
    assert _get(served, "/v1/runs", web["admin_key"]).status_code == 200
