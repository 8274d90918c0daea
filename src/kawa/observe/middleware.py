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
        header = (HEADER, rid.encode("ascii"))
        status = 500
        started = time.perf_counter() if self.access_log else 0.0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            if tracing.enabled():
                with tracing.request_span(scope["method"], scope["path"], rid) as span:
                    try:
                        await self._handle(scope, receive, send_with_id)
                    finally:
                        tracing.end_request(span, scope["method"], status, _route(scope))
            else:
                await self._handle(scope, receive, send_with_id)
        finally:
            if self.access_log:
                elapsed_ms = (time.perf_counter() - started) * 1000
                access.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)
            request_id.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            raise


def _route(scope: Scope) -> str | None:
    route: Any = scope.get("route")
    return getattr(route, "path", None)
