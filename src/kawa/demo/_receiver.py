"""A webhook receiver on 127.0.0.1 for `kawa demo`: the stand-in for a push or e-mail service."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class WebhookReceiver:
    """Takes JSON POSTs at `path` on a free loopback port and keeps each batch once, by Idempotency-Key.

    >>> import httpx
    >>> batch, key = {"members": [{"user_id": "u1"}]}, {"Idempotency-Key": "b1"}
    >>> with WebhookReceiver("/hook") as hook:
    ...     for _ in range(2):  # a resent batch, same key
    ...         _ = httpx.post(hook.url, json=batch, headers=key)
    ...     hook.posts, hook.members("user_id")
    (2, ['u1'])
    """

    def __init__(self, path: str = "/") -> None:
        self.path = path
        self.posts = 0
        self._batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-webhook", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def members(self, entity: str) -> list[str]:
        """Every member id in the batches taken, in arrival order (a repeat means a member sent twice)."""
        with self._lock:
            batches = list(self._batches.values())
        return [str(m.get(entity)) for b in batches for m in b.get("members", [])]

    def first_member(self) -> dict[str, Any] | None:
        with self._lock:
            for batch in self._batches.values():
                if batch.get("members"):
                    return dict(batch["members"][0])
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                if self.path != receiver.path:
                    self._answer(404, {"error": f"POST {receiver.path}"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    self._answer(400, {"error": "the body is not JSON"})
                    return
                if not isinstance(body, dict):
                    self._answer(400, {"error": "the body must be a JSON object"})
                    return
                key = self.headers.get("Idempotency-Key") or str(body.get("id") or len(receiver._batches))
                with receiver._lock:
                    receiver.posts += 1
                    receiver._batches.setdefault(key, body)
                self._answer(200, {"ok": True})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the demo prints its own summary

        return Handler

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
