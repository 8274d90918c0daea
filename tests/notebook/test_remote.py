"""`kawa.connect(url=..., key=...)` against a real `kawa serve` on 127.0.0.1: the same answers as the
project folder gives, and errors that say which key or which mode is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import kawa
from kawa.notebook import LocalProject, RemoteProject
from kawa.notebook import remote as remote_module
from kawa.serve.local import LocalServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(k: LocalProject) -> LocalProject:
    run = k.run("loyalty", in_process=True, progress=False)
    assert run.succeeded, run.error
    return k


@pytest.fixture(scope="module")
def server(trained: LocalProject, project_dir: Path) -> Iterator[LocalServer]:
    with LocalServer(project_dir) as srv:
        yield srv


def _keys(project_dir: Path) -> dict[str, str]:
    keys: dict[str, str] = yaml.safe_load((project_dir / "kawa.yaml").read_text())["projects"]["shop"]
    return keys


@pytest.fixture(scope="module")
def admin(server: LocalServer, project_dir: Path) -> Iterator[RemoteProject]:
    with kawa.connect(url=server.url, key=_keys(project_dir)["admin_key"]) as remote:
        yield remote


def test_sql_and_tables_match_the_project_folder(admin: RemoteProject, trained: LocalProject) -> None:
    query = (
        "SELECT keys.user_id AS user_id, count(*) AS events, max(sync_date) AS last_seen, "
        "max(_date) AS last_day FROM events WHERE keys.user_id IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    remote, local = admin.sql(query), trained.sql(query)
    assert remote.arrow().equals(local.arrow())  # timestamps and dates typed again, not left as text
    assert remote.df().equals(local.df())
    assert admin.sql(query, limit=3).truncated and admin.sql(query, limit=3).shape == (3, 4)
    assert set(admin.tables()) == set(trained.tables())
    assert admin.project == "shop"


def test_models_and_predictions_match_the_project_folder(
    admin: RemoteProject, trained: LocalProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [m.name for m in admin.models()] == [m.name for m in trained.models()] == ["loyalty"]
    assert admin.model("loyalty").record == trained.model("loyalty").record
    with pytest.raises(LookupError, match="has no version 9"):
        admin.model("loyalty", 9)
    monkeypatch.setattr(remote_module, "PREDICT_CHUNK", 40)
    rows = trained.sql("SELECT * EXCLUDE (cutoff) FROM loyalty_features ORDER BY user_id")
    remote, local = admin.predict("loyalty", rows.pl()), trained.predict("loyalty", rows)
    assert len(remote) == len(rows) > 80  # sent in three requests or more
    np.testing.assert_allclose(remote.values, local.values)
    one = rows.to_pylist()[0]
    assert admin.predict("loyalty", one).value == pytest.approx(local.values[0])
    user = one["user_id"]
    assert admin.prediction("loyalty", user) == trained.prediction("loyalty", user)
    with pytest.raises(LookupError, match="no prediction of model 'loyalty' for 'nobody'"):
        admin.prediction("loyalty", "nobody")
    with pytest.raises(ValueError, match=r"predict: field 'days_since_last_purchase' is missing"):
        admin.predict("loyalty", {"purchases_30d": 1})


def test_a_run_started_over_http_is_followed_to_its_end(
    admin: RemoteProject, trained: LocalProject, capsys: pytest.CaptureFixture
) -> None:
    run = admin.run("hello", event="cart_add")
    assert run.succeeded, run.error
    n = trained.sql("SELECT count(*) AS n FROM events WHERE event_name = 'cart_add'").to_pylist()[0]["n"]
    assert run.metrics == {"events": n} and run.params == {"event": "cart_add"}
    assert [(s.step, s.status) for s in run.steps] == [("counted", "succeeded")]
    assert "  counted: succeeded in " in capsys.readouterr().out
    assert admin.runs("hello")[0].run_id == run.run_id == trained.runs("hello")[0].run_id
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        admin.run("hello", nope=1)


def test_read_key_and_local_only_calls_say_what_is_needed(server: LocalServer, project_dir: Path) -> None:
    with kawa.connect(url=server.url, key=_keys(project_dir)["read_key"]) as reader:
        assert reader.model("loyalty").version >= 1
        with pytest.raises(PermissionError, match="admin key"):
            reader.sql("SELECT 1")
        with pytest.raises(
            NotImplementedError, match=r"k.training_set\(...\) needs the project's own stores"
        ):
            reader.training_set("bought_14d", "rfm")
        with pytest.raises(NotImplementedError, match=r"kawa\.connect\(\)"):
            reader.register("m", object())
    with kawa.connect(url=server.url, key="wrong") as stranger, pytest.raises(PermissionError):
        stranger.models()
    with (
        kawa.connect(url="http://127.0.0.1:9", key="k") as nowhere,
        pytest.raises(Exception, match="could not reach"),
    ):
        nowhere.models()
