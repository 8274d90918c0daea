"""Ingest routes: kawa's own `POST /v1/events` and Segment's HTTP Tracking API."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kawa.api.auth import authenticate, request_key
from kawa.auth import Role
from kawa.events.collector import Collector, IngestResult, decompress
from kawa.events.validate import first_api_key

router = APIRouter(tags=["ingest"])

_EVENTS_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    },
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is {declared} bytes; the limit is {limit}; send smaller batches")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit} bytes; send smaller batches")
        chunks.append(chunk)
    body = b"".join(chunks)
    return decompress(body, request.headers.get("content-encoding", ""), limit)


_LATE_S = 0.01


class BodyGuard:
    """ASGI middleware: every route's body is refused past `limit` bytes (413), or when it stalls or
    trickles in (408), with the app's own error answer; the app sees the error where it reads the body.

    Only reads of an unfinished body are checked. Once the body is whole, `receive` (which a streaming
    response awaits to notice a disconnect) passes through untouched.
    """

    def __init__(self, app: ASGIApp, *, limit: int, idle_s: float, total_s: float) -> None:
        self.app = app
        self.limit = limit
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_s
        declared = dict(scope["headers"]).get(b"content-length", b"")
        size = 0
        whole = False

        async def guarded_receive() -> Message:
            nonlocal size, whole
            if whole:
                return await receive()
            if declared.isdigit() and int(declared) > self.limit:
                whole = True
                raise HTTPException(413, f"the body is {int(declared)} bytes; the limit is {self.limit}")
            now = loop.time()
            left = deadline - now
            try:
                # Past the deadline (an app that reads its body late), what has already arrived is
                # still taken, but only if it ends the body. A timeout, not wait_for: no task per read.
                async with asyncio.timeout_at(now + max(min(self.idle_s, left), _LATE_S)):
                    message = await receive()
                if left <= 0 and message.get("more_body", False):
                    raise TimeoutError
            except TimeoutError:
                whole = True
                raise HTTPException(
                    408,
                    f"the request body stalled (no bytes for {self.idle_s:g} s, or not whole within "
                    f"{self.total_s:g} s); send the whole body at once",
                ) from None
            size += len(message.get("body", b""))
            if size > self.limit:
                whole = True
                raise HTTPException(413, f"the body is over {self.limit} bytes; send less")
            if message["type"] != "http.request" or not message.get("more_body", False):
                whole = True
            return message

        await self.app(scope, guarded_receive, send)


def is_ndjson(request: Request, body: bytes) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if "ndjson" in kind or "jsonl" in kind or "json-seq" in kind:
        return True
    if kind in ("text/plain", ""):  # sendBeacon sends text/plain: one object, an array, or lines
        return body.lstrip()[:1] == b"{"
    return False


def answer(result: IngestResult) -> JSONResponse:
    status = 400 if result.accepted == 0 and result.rejected > 0 else 200
    return JSONResponse(result.to_json(), status_code=status)


@router.post("/v1/events", openapi_extra=_EVENTS_DOC, summary="Send events (JSON object, array, or NDJSON)")
async def post_events(request: Request) -> JSONResponse:
    return await events_response(request)


async def events_response(request: Request) -> JSONResponse:
    """The answer to `POST /v1/events`: the route's, and kawa.api._fast's ahead of the router."""
    runtime = request.app.state.runtime
    collector: Collector = request.app.state.collector
    body = await read_body(request, runtime.config.ingest.max_body_bytes)
    ndjson = is_ndjson(request, body)
    keyring = runtime.keyring
    if request_key(request) is not None:
        info = authenticate(request, Role.WRITE, Role.ADMIN)
        project, key_project = info.project, None
    else:
        project, key_project = _project_from_body_keys(body, keyring)

    def owner(key: str) -> str | None:
        found = keyring.verify(key)
        return found.project if found is not None and found.role in (Role.WRITE, Role.ADMIN) else None

    with collector.admit():
        if key_project:
            # Per-event keys may need the metadata database: validate off the event loop.
            result = await run_in_threadpool(
                collector.ingest, body, project=project, ndjson=ndjson, key_project=owner
            )
        else:
            # Validation is CPU work that holds the GIL wherever it runs, so it runs here, and only the
            # durable append leaves the loop (a request costs one thread hand-off fewer).
            batch, received_at = collector.validate(body, project=project, ndjson=ndjson)
            result = await collector.append_async(batch, project=project, received_at=received_at)
    return answer(result)


def _project_from_body_keys(body: bytes, keyring: object) -> tuple[str, bool]:
    """Without an Authorization header, the first event's `keys.api_key` names the project."""
    key = first_api_key(body)
    if key is None:
        raise HTTPException(
            401, "no write key; send Authorization: Bearer KEY, HTTP Basic, or keys.api_key in each event"
        )
    info = keyring.verify(key)  # type: ignore[attr-defined]
    if info is None or info.role not in (Role.WRITE, Role.ADMIN):
        raise HTTPException(401, "keys.api_key is not a valid write key")
    return info.project, True
