"""GET /v1/predictions/{model}/{entity}: predictions written by another process, read over HTTP."""

from __future__ import annotations

import httpx

from kawa.serving.store import Prediction, PredictionStore, encode, now_rfc3339, realtime_namespace
from kawa.stores.online import open_online_store
from tests.conftest import Server


def test_stored_predictions_are_served_to_read_keys_of_their_project(server: Server) -> None:
    stamp = now_rfc3339()
    with open_online_store("lmdb", server.root / ".kawa") as online:
        written = PredictionStore(online).put_many(
            server.project,
            "loyalty",
            [(f"u{i}", Prediction(score=i / 10, model_version=3, computed_at=stamp)) for i in range(5)],
        )
    assert written == 5
    read = {"Authorization": f"Bearer {server.keys['read_key']}"}
    r = httpx.get(server.url + "/v1/predictions/loyalty/u4", headers=read)
    assert r.status_code == 200, r.text
    assert r.json() == {"score": 0.4, "model_version": 3, "computed_at": stamp, "source": "batch"}
    assert httpx.get(server.url + "/v1/predictions/loyalty/nobody", headers=read).status_code == 404
    assert httpx.get(server.url + "/v1/predictions/other/u4", headers=read).status_code == 404
    admin = {"Authorization": f"Bearer {server.keys['admin_key']}"}
    assert httpx.get(server.url + "/v1/predictions/loyalty/u4", headers=admin).status_code == 200
    write = {"Authorization": f"Bearer {server.keys['write_key']}"}
    assert httpx.get(server.url + "/v1/predictions/loyalty/u4", headers=write).status_code == 403
    assert httpx.get(server.url + "/v1/predictions/loyalty/u4").status_code == 401
    other = server.add_project("pred" + stamp[-6:-1].replace(".", "").replace(":", ""))
    theirs = {"Authorization": f"Bearer {other['read_key']}"}
    assert httpx.get(server.url + "/v1/predictions/loyalty/u4", headers=theirs).status_code == 404


def test_the_newest_of_the_batch_and_the_realtime_prediction_is_served(server: Server) -> None:
    read = {"Authorization": f"Bearer {server.keys['read_key']}"}
    with open_online_store("lmdb", server.root / ".kawa") as online:
        store = PredictionStore(online)
        old = Prediction(score=0.1, model_version=1, computed_at="2026-01-01T00:00:00.000Z")
        store.put_many(server.project, "intent", [("s1", old), ("s2", old)])
        # As the trigger worker writes them (realtime namespace, with the event and trigger).
        stamp = now_rfc3339()
        live = Prediction(0.9, 2, stamp, source="realtime", event_id="e7", trigger="t")
        online.put_many(realtime_namespace(server.project, "intent"), [("s1", encode(live))])
        newest = httpx.get(server.url + "/v1/predictions/intent/s1", headers=read).json()
        assert newest == {
            "score": 0.9, "model_version": 2, "computed_at": live.computed_at, "source": "realtime",
            "event_id": "e7", "trigger": "t",
        }  # fmt: skip
        only_batch = httpx.get(server.url + "/v1/predictions/intent/s2", headers=read).json()
        assert (only_batch["score"], only_batch["source"]) == (0.1, "batch")
        rerun = Prediction(score=0.3, model_version=3, computed_at="2999-01-01T00:00:00.000Z")
        store.put_many(server.project, "intent", [("s1", rerun)])
        again = httpx.get(server.url + "/v1/predictions/intent/s1", headers=read).json()
        assert (again["score"], again["source"], again["model_version"]) == (0.3, "batch", 3)
