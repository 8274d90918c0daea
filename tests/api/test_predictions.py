"""GET /v1/predictions/{model}/{entity}: predictions written by another process, read over HTTP."""

from __future__ import annotations

import httpx

from kawa.serving.store import Prediction, PredictionStore, now_rfc3339
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
