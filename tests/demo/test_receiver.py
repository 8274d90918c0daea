"""The demo's webhook receiver: keeps each batch once by its Idempotency-Key, refuses what is not a batch."""

from __future__ import annotations

import doctest

import httpx

from kawa.demo import _receiver
from kawa.demo._receiver import WebhookReceiver


def test_docstring_examples_run() -> None:
    result = doctest.testmod(_receiver)
    assert result.attempted > 0 and result.failed == 0


def test_bad_posts_are_refused_and_batches_kept_in_order() -> None:
    with WebhookReceiver("/hook") as hook:
        base = hook.url.removesuffix("/hook")
        assert httpx.post(base + "/other", json={}).status_code == 404
        assert httpx.post(hook.url, content=b"{not json").status_code == 400
        assert httpx.post(hook.url, json=[1, 2]).status_code == 400
        for key, users in (("b1", ["u1", "u2"]), ("b2", ["u3"]), ("b1", ["u1", "u2"])):
            members = [{"user_id": u} for u in users]
            sent = httpx.post(hook.url, json={"members": members}, headers={"Idempotency-Key": key})
            assert sent.status_code == 200
        assert hook.posts == 3
        assert hook.members("user_id") == ["u1", "u2", "u3"]
        assert hook.first_member() == {"user_id": "u1"}
