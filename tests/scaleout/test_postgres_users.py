"""Keys, registry, runs, step cache, schedules and lineage: the metadata store's users, run on PostgreSQL.

Rather than a second copy of their tests, this module adopts the tests of those parts' own modules
(each under a `test_<part>_` name) and gives them fixtures over a fresh PostgreSQL database, so every
test added there runs here too. Tests about SQLite's files, or that open the embedded store by hand
in a child process, are left out below, each with its reason. Then tests of what only a shared
server shows: processes racing for the same schedule dates and lease, and caches that see another
process's promotion and revocation through PostgreSQL's notifications.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

import tests.auth.test_keys as keys_tests
from kawa.auth import KeyRing
from kawa.config import Config, StoresConfig
from kawa.models import Registry
from kawa.runtime import Runtime
from kawa.schedule import ManualClock
from kawa.schedule.store import ScheduleStore
from kawa.stores.artifacts import open_artifacts
from kawa.stores.metadata import MetadataStore, open_metadata
from tests.lineage import test_lineage as lineage_tests
from tests.models import conftest as model_fixtures
from tests.models import test_registry as registry_tests
from tests.pipelines import test_cache as cache_tests
from tests.pipelines import test_runs as runs_tests
from tests.schedule import test_recovery as recovery_tests
from tests.schedule import test_scheduler as scheduler_tests
from tests.schedule.conftest import T0
from tests.triggers.conftest import buyer_bundle

pytest_plugins = ["tests.services.postgres"]

# The fixtures that reach the metadata store: a test that takes none of them has nothing to run here.
DATABASE_FIXTURES = {"store", "ring", "metadata", "registry", "runtime"}
SQLITE_FILES = "reads SQLite's files or opens the embedded store in a child process"
CLI_CONFIG = "runs the CLI on a kawa.yaml of its own, which names the embedded store"
STEP_PROCESSES = "runs steps in processes of their own, as test_postgres_serve.py does through the CLI"

ADOPTED: dict[str, tuple[ModuleType, dict[str, str]]] = {
    "keys": (
        keys_tests,
        {
            "test_a_revoked_key_is_refused_at_once_when_another_process_revokes_it": SQLITE_FILES,
            "test_no_plaintext_secret_reaches_the_database_files": SQLITE_FILES,
        },
    ),
    "registry": (
        registry_tests,
        {"test_a_promotion_is_seen_by_another_registry_without_a_restart": SQLITE_FILES},
    ),
    "runs": (runs_tests, {"test_pipeline_run_uses_the_project_in_the_working_folder": SQLITE_FILES}),
    "cache": (cache_tests, {"test_caching_works_across_processes": STEP_PROCESSES}),
    "scheduler": (scheduler_tests, {}),
    "recovery": (recovery_tests, {}),
    "lineage": (lineage_tests, {"test_kawa_lineage_prints_upstream_downstream_and_impact": CLI_CONFIG}),
}


def _adopt() -> None:
    for part, (module, left_out) in ADOPTED.items():
        tests = {n: f for n, f in vars(module).items() if n.startswith("test_") and callable(f)}
        gone = set(left_out) - set(tests)
        assert not gone, f"{module.__name__} no longer has {sorted(gone)}; update ADOPTED"
        for name, test in tests.items():
            wanted = set(inspect.signature(test).parameters)
            if name not in left_out and wanted & DATABASE_FIXTURES:
                globals()[f"test_{part}_{name.removeprefix('test_')}"] = test


_adopt()


# -- the fixtures the adopted tests take, over PostgreSQL ----------------------------------------------


@pytest.fixture
def runtime(tmp_path: Path, postgres_url: str) -> Iterator[Runtime]:
    rt = Runtime(Config(project="shop", root=str(tmp_path), stores=StoresConfig(metadata=postgres_url)))
    assert rt.metadata.engine.dialect.name == "postgresql"
    try:
        yield rt
    finally:
        rt.close()
    assert not list(tmp_path.rglob("metadata.sqlite3")), "a part fell back to the embedded store"


@pytest.fixture
def store(postgres_url: str, tmp_path: Path) -> Iterator[MetadataStore]:
    with open_metadata(postgres_url, tmp_path / "state") as store:
        yield store


metadata = store  # the model tests' name for it


@pytest.fixture
def ring(store: MetadataStore) -> Iterator[KeyRing]:
    with KeyRing(store) as ring:
        yield ring


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


table = model_fixtures.table
artifacts = model_fixtures.artifacts
registry = model_fixtures.registry
bundles = registry_tests.bundles


# -- processes racing on one database ------------------------------------------------------------------

RACE = """
    import sys
    from datetime import datetime, timedelta
    from kawa.schedule.lease import Lease
    from kawa.schedule.store import ScheduleStore
    from kawa.stores.metadata import open_metadata

    url, owner, t0, dates = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])
    hour = timedelta(hours=1)
    with open_metadata(url, None) as metadata:
        store = ScheduleStore(metadata)
        print("ready", flush=True)
        sys.stdin.readline()
        print("lease", Lease(metadata).acquire("shop", owner, t0, ttl_s=3600, dead=False), flush=True)
        # Every racer moves the schedule's cursor on as far as it can, one date at a time.
        while (cursor := store.schedules("shop")["kpis"].cursor) < t0 + dates * hour:
            if store.advance("shop", "kpis", cursor=cursor, new_cursor=cursor + hour, due=[cursor],
                             missed=[], reason="", now=t0):
                print("advanced", cursor.isoformat(), flush=True)
        for i in range(dates):
            if store.take(("shop", "kpis", t0 + i * hour), owner, t0):
                print("took", (t0 + i * hour).isoformat(), flush=True)
"""


def _said(outputs: list[str], what: str) -> list[tuple[int, str]]:
    """(racer, value) for every line `what value` the racers printed."""
    return [
        (racer, line.split(" ", 1)[1])
        for racer, out in enumerate(outputs)
        for line in out.splitlines()
        if line.startswith(what + " ")
    ]


def test_processes_racing_for_the_same_dates_and_lease_each_win_once(
    store: MetadataStore, postgres_url: str, tmp_path: Path
) -> None:
    dates, racers = 12, 2
    schedules = ScheduleStore(store)
    schedules.put_schedule(
        "shop", "kpis", spec={"every": "1h"}, fingerprint="f" * 64, status="active", error=None,
        first_run=T0, cursor=T0, now=T0, deployed=True,
    )  # fmt: skip
    command = [sys.executable, "-c", textwrap.dedent(RACE), postgres_url]
    procs = [
        subprocess.Popen(
            [*command, f"racer-{i}", T0.isoformat(), str(dates)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    try:
        for proc in procs:  # all connected and waiting, then all let go at once
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.communicate()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    hours = [T0 + timedelta(hours=i) for i in range(dates)]
    # One racer holds the lease, and every racer was told so.
    holders = {holder for _, holder in _said(outputs, "lease")}
    assert len(holders) == 1 and len(_said(outputs, "lease")) == racers
    # Each date was advanced past once and taken once, by whichever racer got there first.
    advanced = _said(outputs, "advanced")
    assert sorted(datetime.fromisoformat(d) for _, d in advanced) == hours
    took = {datetime.fromisoformat(d): racer for racer, d in _said(outputs, "took")}
    assert len(_said(outputs, "took")) == dates and sorted(took) == hours
    claims = schedules.claims("shop", pipeline="kpis")
    assert [(c.logical_date, c.state, c.owner) for c in claims] == [
        (h, "running", f"racer-{took[h]}") for h in hours
    ]
    assert schedules.schedules("shop")["kpis"].cursor == T0 + dates * timedelta(hours=1)


CHANGE = """
    import sys
    from pathlib import Path
    from kawa.auth import KeyRing
    from kawa.models import Registry
    from kawa.stores.artifacts import open_artifacts
    from kawa.stores.metadata import open_metadata

    url, state, key = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    with open_metadata(url, None) as metadata, open_artifacts("local", state) as artifacts:
        Registry(metadata, artifacts).promote("shop", "buyer", 1)
        assert KeyRing(metadata).revoke(key)
"""


def test_a_promotion_and_a_revocation_by_another_process_are_seen_without_waiting_out_a_ttl(
    store: MetadataStore, postgres_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with (
        open_artifacts("local", state) as artifacts,
        Registry(store, artifacts, ttl_s=3600) as serving,
        KeyRing(store, ttl_s=3600) as ring,
    ):
        for _ in range(2):
            serving.register("shop", "buyer", buyer_bundle())
        serving.promote("shop", "buyer", 2)
        keys = ring.add_project("shop")
        assert serving.resolve("shop", "buyer") == 2 and ring.verify(keys.read_key) is not None  # cached
        code = textwrap.dedent(CHANGE)
        subprocess.run(
            [sys.executable, "-c", code, postgres_url, str(state), keys.read_key], check=True, timeout=60
        )
        # The other process's commits arrive as notifications: with a TTL of an hour nothing else
        # would make these caches read again.
        assert serving.resolve("shop", "buyer") == 1
        assert ring.verify(keys.read_key) is None
        assert ring.verify(keys.write_key) is not None
