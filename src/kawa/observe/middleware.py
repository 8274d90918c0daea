"""ASGI middleware: a request id on every request, its log lines and its response; access log; spans."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kawa.observe import tracing
from kawa.observe.logs import request_id

HEADER = b"x-request-id"
# A client's id is kept when it is short plain text; anything else gets a fresh id (logs stay clean).
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")

log = logging.getLogger("kawa.api")
access = logging.getLogger("kawa.access")


def new_request_id() -> str:
    return os.urandom(12).hex()


def incoming_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The X-Request-ID a client sent, if it is one kawa will repeat.

    >>> incoming_id([(b"x-request-id", b"abc-123")])
    'abc-123'
    >>> incoming_id([(b"x-request-id", b"bad id\\n")]) is None
    True
    """
    for name, value in headers:
        if name == HEADER:
            return value.decode("ascii") if _SAFE_ID.fullmatch(value) else None
    return None


class RequestContext:
    """Takes X-Request-ID from the request (or makes one), returns it, and sets it for log lines.

    With `access_log`, writes one `kawa.access` line per request (method, path, status, time).
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = incoming_id(scope["headers"]) or new_request_id()
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, rid.encode("ascii"))]
            await send(message)

        method, path = scope["method"], scope["path"]
        try:
            with tracing.request_span(method, path, rid) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception:
                    log.exception("%s %s failed", method, path)
                    raise
                finally:
                    tracing.end_request(span, method, status, _route(scope))
        finally:
            if self.access_log:
                access.info("%s %s %d %.1fms", method, path, status, (time.perf_counter() - started) * 1000)
            request_id.reset(token)


def _route(scope: Scope) -> str | None:
    route: Any = scope.get("route")
    return getattr(route, "path", None)
