"""Browser tracking over HTTP: CORS on the ingest endpoints with per-project origins, and `GET /kawa.js`.

Starlette's `CORSMiddleware` answers preflights and labels responses, but with one origin list for the
whole app, and a browser's CORS only hides responses: a `text/plain` POST or a `sendBeacon` is sent
without a preflight and kawa would store its events whatever the response headers said. So the ingest
paths get `CORSMiddleware` (allowing an origin that some project allows) over `_OriginGate`, which
finds the request's key (header, `keys.api_key` or Segment's `writeKey` in the body) and refuses with
403 a cross-origin request whose origin that key's project does not allow, before any event is stored.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

import msgspec
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kawa.api.auth import request_key
from kawa.events.collector import decompress
from kawa.events.segment import SEGMENT_PATHS
from kawa.events.validate import BodyError, first_api_key, pseudo_depth
from kawa.runtime import Runtime
from kawa.tracking.origins import OriginPolicy

INGEST_PATHS: frozenset[str] = frozenset({"/v1/events", *SEGMENT_PATHS})
# analytics.js sends Authorization (Basic) and X-Retry-Count; gzip bodies send Content-Encoding.
_REQUEST_HEADERS = ("Authorization", "Content-Encoding", "X-Retry-Count")
SCRIPT_CACHE = "public, max-age=3600, stale-while-revalidate=86400"

router = APIRouter(tags=["browser"])


class _WriteKey(msgspec.Struct):
    writeKey: str | None = None  # Segment's name


_write_key = msgspec.json.Decoder(_WriteKey)


@cache
def _script() -> tuple[bytes, str]:
    body = resources.files("kawa.tracking").joinpath("kawa.js").read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


@router.get("/kawa.js", summary="The browser tracking script (see docs/browser.md)", response_class=Response)
async def kawa_js(request: Request) -> Response:
    body, etag = _script()
    headers = {
        "Cache-Control": SCRIPT_CACHE,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # A public, credential-free script: pages may load it with crossorigin="anonymous".
        "Access-Control-Allow-Origin": "*",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


def install(app: FastAPI, runtime: Runtime) -> None:
    """Serve `/kawa.js` and put per-project CORS on the ingest endpoints (and only there)."""
    app.include_router(router)
    app.add_middleware(BrowserIngress, runtime=runtime)


class BrowserIngress:
    """ASGI middleware: CORS and the origin gate for the ingest paths; other paths pass untouched."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        policy = OriginPolicy({name: keys.allowed_origins for name, keys in runtime.config.projects.items()})
        self.cors = _IngestCORS(_OriginGate(app, runtime, policy), policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in INGEST_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _IngestCORS(CORSMiddleware):
    """Starlette's CORS for POSTs, allowing the origins any project allows (a preflight has no key)."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        super().__init__(app, allow_methods=("POST",), allow_headers=_REQUEST_HEADERS, max_age=7200)
        self.policy = policy

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows_any(origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        origin = request_headers["origin"]
        if response.status_code == 400 and not self.is_allowed_origin(origin):
            return JSONResponse(
                {
                    "error": f"origin {origin} may not send events here; add it to allowed_origins "
                    "of the project in kawa.yaml (see docs/browser.md)"
                },
                status_code=403,
                headers={"Vary": "Origin"},
            )
        return response


class _OriginGate:
    """Refuses (403) a cross-origin ingest request whose key's project does not allow its origin."""

    def __init__(self, app: ASGIApp, runtime: Runtime, policy: OriginPolicy) -> None:
        self.app = app
        self.runtime = runtime
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] != "POST" or origin is None or _same_origin(origin, headers.get("host")):
            await self.app(scope, receive, send)
            return
        limit = self.runtime.config.ingest.max_body_bytes
        messages, body = await _buffer(receive, limit)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        project = None if body is None else self._project(scope, headers, body, limit)
        if project is not None and not self.policy.allows(project, origin):
            refusal = JSONResponse(
                {
                    "error": f"origin {origin} may not send events for project {project!r}; add it to "
                    f"projects.{project}.allowed_origins in kawa.yaml and restart kawa serve"
                },
                status_code=403,
            )
            await refusal(scope, replay, send)
            return
        await self.app(scope, replay, send)

    def _project(self, scope: Scope, headers: Headers, body: bytes, limit: int) -> str | None:
        """The project of the request's key; None leaves the answer (401, 400, 413) to the route."""
        try:
            key = request_key(Request(scope))
            if key is None:
                key = _body_key(scope["path"], decompress(body, headers.get("content-encoding", ""), limit))
        except (HTTPException, BodyError):
            return None
        info = self.runtime.keyring.verify(key) if key else None
        return info.project if info is not None else None


def _body_key(path: str, body: bytes) -> str | None:
    if path == "/v1/events":
        return first_api_key(body)
    if pseudo_depth(body) > 64:  # the Segment route refuses it; do not let the decoder go deep first
        return None
    try:
        return _write_key.decode(body).writeKey
    except (msgspec.DecodeError, RecursionError):
        return None


async def _buffer(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The request's messages read so far and its body; None when it is over `limit` (the route says 413)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether `origin` is kawa's own (a page kawa served), which CORS does not apply to."""
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()
