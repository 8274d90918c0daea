"""`pip install kawa` from a built wheel works outside the repository: a fresh virtualenv in a temporary
folder gets the wheel (its dependencies from the package index or pip's cache, no extras), and from another
temporary folder `kawa --version`, `kawa init`, `kawa serve`, an event sent and read back, the web UI, the
migrated metadata store and a template all work from what the wheel ships."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

import kawa
from kawa.serve.local import LocalServer
from kawa.stores.metadata.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `make dist` makes: the sdist first, then the wheel built from it."""
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=dist, timeout=300)
    wheels = list(dist.glob("kawa-*.whl"))
    assert len(wheels) == 1 and list(dist.glob("kawa-*.tar.gz")), sorted(p.name for p in dist.iterdir())
    assert wheels[0].name.startswith(f"kawa-{kawa.__version__}-")
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the repository with kawa installed from the wheel."""
    env = tmp_path_factory.mktemp("venv") / "env"
    assert ROOT not in env.parents
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)], cwd=env.parent)
    # The repository's pip installs into the new environment (--python): no pip of its own to set up.
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python")]
    _run([*pip, "install", "--no-compile", "--quiet", str(wheel)], cwd=env.parent, timeout=600)
    return env


@pytest.fixture(scope="module")
def project(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    _kawa(venv, folder, "init", "--project", "shop")
    return folder


@pytest.fixture(scope="module")
def server(venv: Path, project: Path) -> Iterator[str]:
    """`kawa serve` of the installed wheel: LocalServer starts `python -m kawa.cli serve` with the
    virtualenv's python, in the project folder outside the repository."""
    installed = LocalServer(project, env={"KAWA__LAKE__FLUSH_INTERVAL_S": "0.2"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "executable", str(venv / "bin" / "python"))
        installed.start()
    try:
        yield installed.url
    finally:
        installed.stop()


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without anything that would point Python or kawa back at the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "KAWA_CONFIG")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if str(ROOT) not in p)
    return {**env, **(extra or {})}


def _run(args: list[str], cwd: Path, timeout: float = 120) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _kawa(venv: Path, cwd: Path, *args: str) -> str:
    return _run([str(venv / "bin" / "kawa"), *args], cwd=cwd)


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "src/kawa"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(path.endswith(".html") for path in tracked)  # templates of the UI, not only modules
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [path for path in tracked if path.removeprefix("src/") not in shipped]
    assert missing == []


def test_the_installed_kawa_is_the_wheel_and_has_the_source_version(venv: Path, project: Path) -> None:
    assert _kawa(venv, project, "--version").strip() == f"kawa {kawa.__version__}"
    where = _run([str(venv / "bin" / "python"), "-c", "import kawa; print(kawa.__file__)"], cwd=project)
    assert Path(where.strip()).is_relative_to(venv), where


def test_init_migrates_the_metadata_store_with_the_shipped_migrations(venv: Path, project: Path) -> None:
    with sqlite3.connect(project / ".kawa" / "metadata.sqlite3") as db:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert revision == head_revision()
    keys = yaml.safe_load(_kawa(venv, project, "keys", "--json"))
    assert set(keys) == {"shop"}


def test_an_event_sent_to_the_installed_server_is_read_back(venv: Path, project: Path, server: str) -> None:
    keys = yaml.safe_load((project / "kawa.yaml").read_text())["projects"]["shop"]
    event = {"event_name": "purchase", "keys": {"user_id": "u1"}, "item_id": "42", "revenue": 59.0}
    sent = httpx.post(
        f"{server}/v1/events", json=event, headers={"Authorization": f"Bearer {keys['write_key']}"}
    )
    assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
    admin = {"Authorization": f"Bearer {keys['admin_key']}"}
    query = {"sql": "SELECT item_id, revenue FROM events WHERE event_name = 'purchase'"}
    deadline = time.monotonic() + 30
    rows = httpx.post(f"{server}/v1/sql", json=query, headers=admin).json().get("rows")
    while rows != [["42", 59.0]] and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = httpx.post(f"{server}/v1/sql", json=query, headers=admin).json().get("rows")
    assert rows == [["42", 59.0]]


def test_the_ui_and_the_public_routes_are_served_from_the_wheel(venv: Path, server: str) -> None:
    page = httpx.get(f"{server}/", headers={"Accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"], page.text[:500]
    assets = [a for a in _links(page.text) if a.startswith("/ui/static/")]
    assert assets, page.text[:500]
    for asset in assets:
        assert httpx.get(server + asset).status_code == 200, asset
    from kawa._docs.http import NO_KEY, live_app, route_keys

    # The process that answered runs the virtualenv's python: the installed kawa, not the repository's.
    pid = httpx.get(f"{server}/healthz").json()["pid"]
    assert str(venv) in Path(f"/proc/{pid}/cmdline").read_text(), "the API process is not the installed kawa"
    public = [
        p for (m, p), key in route_keys(live_app()).items() if m == "GET" and key == NO_KEY and "{" not in p
    ]
    assert "/healthz" in public
    for path in public:
        assert httpx.get(server + path).status_code == 200, path


def test_templates_ship_in_the_wheel(venv: Path, project: Path) -> None:
    _kawa(venv, project, "new", "pipeline", "--template", "rfm")
    assert "CREATE OR REPLACE MODEL" in (project / "rfm.py").read_text()


def _links(html: str) -> list[str]:
    import re

    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
