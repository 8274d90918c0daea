"""Triggers through a real `kawa serve`: scoring, errors, promotion, a slow webhook, metrics and the CLI."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kawa.config import load_config
from kawa.models import Registry
from kawa.runtime import Runtime
from tests.conftest import Server, kawa
from tests.triggers.conftest import Webhook, buyer_bundle, wait_until

FEATURES = """
from kawa.triggers import Trigger

buyer = Trigger("buyer_on_view", on={{"event_name": "view"}}, key="keys.user_id", model="buyer")
strict = Trigger("strict_on_check", on={{"event_name": "check"}}, key="keys.user_id", model="strict")
hooked = Trigger("hooked", on={{"event_name": "cart_add"}}, key="keys.user_id", model="buyer",
                 webhook="{webhook}")
"""


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[Server]:
    """A server whose project declares three triggers and has their models registered."""
    root = tmp_path_factory.mktemp("triggers")
    srv = Server(root)
    (root / "features.py").write_text(FEATURES.format(webhook=webhook.url))
    runtime = Runtime(load_config(root / "kawa.yaml"))
    registry = Registry.from_runtime(runtime)
    registry.register(srv.project, "buyer", buyer_bundle())
    registry.register(srv.project, "buyer", buyer_bundle(flip=True))
    registry.promote(srv.project, "buyer", 1)
    registry.register(srv.project, "strict", buyer_bundle(strict=True))
    registry.promote(srv.project, "strict", 1)
    registry.close()
    runtime.close()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def send(server: Server, events: list[dict[str, Any]]) -> float:
    """POST events as one request; returns how long the acknowledgement took."""
    body = "\n".join(json.dumps(e) for e in events).encode()
    started = time.perf_counter()
    with server.client("write") as client:
        r = client.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    return time.perf_counter() - started


def triggers(server: Server) -> dict[str, dict[str, Any]]:
    with server.client("read") as client:
        r = client.get("/v1/triggers")
    assert r.status_code == 200, r.text
    return {t["name"]: t for t in r.json()["triggers"]}


def prediction(server: Server, model: str, entity: str) -> dict[str, Any] | None:
    with server.client("read") as client:
        r = client.get(f"/v1/predictions/{model}/{entity}")
    return r.json() if r.status_code == 200 else None


def test_a_triggering_event_is_scored_and_readable_through_the_api(served: Server) -> None:
    event = {"event_name": "view", "event_id": "first-view", "keys": {"user_id": "reader"}, "price": 61.0}
    send(served, [event])
    acked = time.perf_counter()
    wait_until(lambda: prediction(served, "buyer", "reader") is not None)
    waited = time.perf_counter() - acked
    found = prediction(served, "buyer", "reader")
    assert found is not None
    assert (found["source"], found["event_id"], found["trigger"], found["model_version"]) == (
        "realtime", "first-view", "buyer_on_view", 1,
    )  # fmt: skip
    assert found["score"] > 0.5
    print(f"\nacknowledged -> readable over HTTP (with polling): {waited * 1000:.1f} ms")
    listed = triggers(served)
    assert set(listed) == {"buyer_on_view", "strict_on_check", "hooked"}
    buyer = listed["buyer_on_view"]
    assert buyer["active"] and buyer["scored"] >= 1 and buyer["model"] == "buyer"
    assert buyer["on"] == {"event_name": "view"} and buyer["errors"] == 0


def test_a_failing_model_gives_error_records_and_the_worker_goes_on(served: Server) -> None:
    before = triggers(served)["strict_on_check"]
    checks = [
        {"event_name": "check", "event_id": "c-ok", "keys": {"user_id": "c1"}, "price": 60.0, "media": "TV"},
        {
            "event_name": "check",
            "event_id": "c-bad",
            "keys": {"user_id": "c2"},
            "price": 60.0,
            "media": "Fax",
        },
        {"event_name": "check", "event_id": "c-bad2", "keys": {"user_id": "c3"}, "price": 60.0},
    ]
    send(served, checks)
    send(served, [{"event_name": "check", "event_id": "c-after", "keys": {"user_id": "c4"}, "price": 20.0,
                   "media": "Radio"}])  # fmt: skip
    wait_until(lambda: triggers(served)["strict_on_check"]["matched"] == before["matched"] + 4)
    after = triggers(served)["strict_on_check"]
    assert (after["scored"] - before["scored"], after["errors"] - before["errors"]) == (2, 2)
    assert prediction(served, "strict", "c4") is not None and prediction(served, "strict", "c2") is None
    with served.client("read") as client:
        errors = client.get("/v1/triggers/strict_on_check/errors").json()["errors"]
        assert client.get("/v1/triggers/nope/errors").status_code == 404
    newest = {e["event_id"]: e for e in errors[:2]}
    assert set(newest) == {"c-bad", "c-bad2"}
    assert "'media'" in newest["c-bad"]["error"] and "missing" in newest["c-bad2"]["error"]
    assert newest["c-bad"]["stage"] == "model" and newest["c-bad"]["entity"] == "c2"
    metrics = httpx.get(served.url + "/metrics").text
    errors_metric = 'kawa_trigger_errors_total{project="shop",trigger="strict_on_check"} '
    line = next(x for x in metrics.splitlines() if x.startswith(errors_metric))
    assert float(line.rsplit(" ", 1)[1]) == after["errors"]
    assert 'kawa_trigger_latency_seconds_bucket{le="+Inf",project="shop",trigger="buyer_on_view"}' in metrics


def test_promotion_while_events_flow_switches_versions_without_an_error(served: Server) -> None:
    before = triggers(served)["buyer_on_view"]
    stop = threading.Event()
    sent: list[str] = []

    def flow() -> None:
        with served.client("write") as client:
            while not stop.is_set():
                event_id = f"promo-{len(sent)}"
                event = {"event_name": "view", "event_id": event_id, "keys": {"user_id": "p"}, "price": 60.0}
                r = client.post("/v1/events", json=event)
                assert r.status_code == 200, r.text
                sent.append(event_id)
                time.sleep(0.01)

    sender = threading.Thread(target=flow)
    sender.start()
    try:
        time.sleep(0.7)
        kawa("models", "promote", "buyer", "2", cwd=served.root)
        time.sleep(0.7)
    finally:
        stop.set()
        sender.join()
    try:
        wait_until(lambda: triggers(served)["buyer_on_view"]["matched"] == before["matched"] + len(sent))
        after = triggers(served)["buyer_on_view"]
        assert after["errors"] == before["errors"]
        assert after["scored"] - before["scored"] == len(sent)
        last = prediction(served, "buyer", "p")
        assert last is not None and last["event_id"] == sent[-1]
        assert last["model_version"] == 2 and last["score"] < 0.5  # the flipped model
    finally:
        kawa("models", "promote", "buyer", "1", cwd=served.root)


def test_a_slow_webhook_does_not_slow_ingest(served: Server, webhook: Webhook) -> None:
    carts = [
        {"event_name": "cart_add", "event_id": f"cart-{i}", "keys": {"user_id": f"w{i}"}, "price": 50.0}
        for i in range(12)
    ]
    send(served, carts[:4])
    wait_until(lambda: webhook.waiting >= 4)  # the receiver holds every call it got
    acks = [send(served, [e]) for e in carts[4:]]
    # Ingest, and scoring of other triggers, go on while no webhook call has been answered.
    send(served, [{"event_name": "view", "event_id": "meanwhile", "keys": {"user_id": "mw"}, "price": 50.0}])
    wait_until(lambda: prediction(served, "buyer", "mw") is not None)
    wait_until(lambda: triggers(served)["hooked"]["scored"] >= 12)
    assert webhook.calls == []
    assert triggers(served)["hooked"]["delivery"]["webhook"]["pending"] == 12
    print(f"\ningest acks while the webhook hangs: median {statistics.median(acks) * 1000:.1f} ms")
    webhook.gate.set()
    wait_until(lambda: len(webhook.calls) >= len(carts))
    ids = {key for key, _ in webhook.calls}
    assert ids == {f"hooked:cart-{i}" for i in range(12)}
    for key, body in webhook.calls:
        assert body["id"] == key and body["trigger"] == "hooked" and body["model_version"] == 1
        assert body["entity"] == "w" + key.rsplit("-", 1)[1] and 0 < body["score"] < 1
    wait_until(lambda: triggers(served)["hooked"]["delivery"]["webhook"]["pending"] == 0)
    assert triggers(served)["hooked"]["delivery"]["webhook"]["delivered"] == 12


def test_kawa_triggers_list_shows_live_counts(served: Server) -> None:
    send(served, [{"event_name": "view", "event_id": "cli-1", "keys": {"user_id": "cli"}, "price": 30.0}])
    wait_until(lambda: prediction(served, "buyer", "cli") is not None)
    out = kawa("triggers", "list", "--json", cwd=served.root).stdout
    found = {t["name"]: t for t in json.loads(out)["triggers"]}
    assert set(found) == {"buyer_on_view", "strict_on_check", "hooked"}
    assert found["buyer_on_view"]["scored"] == triggers(served)["buyer_on_view"]["scored"]
    assert found["buyer_on_view"]["running"]
    table = kawa("triggers", "list", cwd=served.root, env={"COLUMNS": "200"}).stdout
    assert "buyer_on_view" in table and "buyer@production" in table and "keys.user_id" in table


def test_triggers_need_a_read_key(served: Server) -> None:
    assert httpx.get(served.url + "/v1/triggers").status_code == 401
    with served.client("write") as client:
        assert client.get("/v1/triggers").status_code == 403
