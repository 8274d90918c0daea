"""Webhook delivery behind a bounded outbox: a hanging receiver pauses the worker, never the log."""

from __future__ import annotations

import threading

import pytest

from kawa.triggers import Trigger, delivery, state
from tests.triggers.conftest import PROJECT, Parts, Webhook, buyer_bundle, wait_until


def scored(parts: Parts, name: str) -> int:
    found = state.read_stats(parts.online, PROJECT).get(name)
    return 0 if found is None else found.scored


def cart(i: int) -> dict[str, object]:
    return {"event_name": "cart_add", "event_id": f"c{i}", "keys": {"user_id": f"u{i}"}, "price": 50.0}


def test_a_full_outbox_pauses_the_worker_until_the_receiver_catches_up(
    parts: Parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "LIMIT", 3)
    # The receiver holds its calls until the gate opens: the sender must not give up on them first
    # (with its 10 s timeout, a slow start of the worker turned the held call into a retry).
    monkeypatch.setattr(delivery, "TIMEOUT_S", 120.0)
    hook = Webhook()
    parts.register(buyer_bundle())
    trigger = Trigger("hooked", on={"event_name": "cart_add"}, key="keys.user_id", model="buyer",
                      webhook=hook.url)  # fmt: skip
    worker = parts.worker([trigger])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        for i in range(3):
            parts.send([cart(i)])
            wait_until(lambda i=i: scored(parts, "hooked") == i + 1)
        outbox = worker.deliverers["hooked", "webhook"]
        assert outbox.full
        wait_until(lambda: hook.waiting >= 1)  # the receiver holds the calls it got
        for i in range(3, 8):
            parts.send([cart(i)])  # the log takes them: ingest does not wait for anyone
        stop.wait(0.3)
        assert worker.offset < parts.writer_log.end_offset()  # paused, with the rest left in the log
        assert scored(parts, "hooked") == 3
        hook.gate.set()
        wait_until(lambda: len(hook.calls) == 8)  # caught up from the log, all delivered
        assert sorted(key for key, _ in hook.calls) == sorted(f"hooked:c{i}" for i in range(8))
        wait_until(lambda: outbox.pending == 0 and worker.offset == parts.writer_log.end_offset())
        sent = state.read_delivery(parts.online, PROJECT)["hooked/webhook"]
        assert (sent.delivered, sent.failed) == (8, 0)
    finally:
        stop.set()
        thread.join(10)
        hook.close()
    assert not thread.is_alive()


def test_a_refusing_receiver_gets_error_records_and_delivery_goes_on(parts: Parts) -> None:
    hook = Webhook()
    hook.gate.set()
    parts.register(buyer_bundle())
    missing = hook.url.replace("/hook", "/nowhere")
    refused = Trigger("refused", on={"event_name": "cart_add"}, key="keys.user_id", model="buyer",
                      webhook=missing)  # fmt: skip
    worker = parts.worker([refused])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        parts.send([cart(1), cart(2)])
        wait_until(lambda: state.read_delivery(parts.online, PROJECT).get("refused/webhook") is not None
                   and state.read_delivery(parts.online, PROJECT)["refused/webhook"].failed == 2)  # fmt: skip
    finally:
        stop.set()
        thread.join(10)
        hook.close()
    errors = state.errors(parts.online, PROJECT, "refused")
    assert [e["stage"] for e in errors] == ["webhook", "webhook"]
    assert "answered 422" in errors[0]["error"]
    assert list(parts.online.scan(state.outbox_ns(PROJECT, "refused", "webhook"))) == []
