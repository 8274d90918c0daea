"""The FastAPI application that `kawa serve` runs: the HTTP API, health, metrics and the web UI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException  # FastAPI's, and the router's own 404 and 405

from kawa import __version__, ui
from kawa.api import bandits as bandit_routes
from kawa.api import browser as browser_routes
from kawa.api import catalog, ingest, models, pipelines, predictions, runs, segment, triggers, warehouse
from kawa.api import events as event_routes
from kawa.api import recommendations as recommendation_routes
from kawa.api import segments as segment_routes
from kawa.api._fast import FastRoutes
from kawa.events.collector import Collector, Overloaded, PayloadTooLarge
from kawa.events.validate import BodyError
from kawa.models import Registry
from kawa.observe.middleware import RequestContext
from kawa.observe.scrape import Exposition
from kawa.runtime import Runtime
from kawa.serving.store import PredictionStore
from kawa.warehouse import SQLError


def create_app(runtime: Runtime) -> FastAPI:
    """The API over `runtime`, which must own the event log's writer."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.register_configured_keys()
        app.state.collector = Collector(runtime.event_log, runtime.config.ingest)
        app.state.predictions = PredictionStore(runtime.online)
        app.state.registry = Registry.from_runtime(runtime)
        app.state.exposition = Exposition(runtime)
        yield
        runtime.close()

    app = FastAPI(
        title="kawa",
        version=__version__,
        description="Events in, predictions out: kawa's HTTP API.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(ingest.router)
    app.include_router(event_routes.router)
    app.include_router(segment.router)
    app.include_router(warehouse.router)
    app.include_router(predictions.router)
    app.include_router(models.router)
    app.include_router(triggers.router)
    app.include_router(pipelines.router)
    app.include_router(runs.router)
    app.include_router(catalog.router)
    app.include_router(bandit_routes.router)
    app.include_router(recommendation_routes.router)
    app.include_router(segment_routes.router)
    ui.install(app)
    # Innermost middleware: the two prediction routes answered ahead of the router (see _fast.py).
    app.add_middleware(FastRoutes)
    browser_routes.install(app, runtime)  # /kawa.js, and CORS on the ingest paths only
    app.add_middleware(RequestContext, access_log=runtime.config.server.access_log)
    limits = runtime.config.ingest  # every route's body: its size, and how long it may take to arrive
    app.add_middleware(
        ingest.BodyGuard,
        limit=limits.max_body_bytes,
        idle_s=limits.body_idle_timeout_s,
        total_s=limits.body_timeout_s,
    )

    @app.get("/healthz", tags=["operations"], summary="Whether the API can take events")
    async def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "event_log_offset": runtime.event_log.end_offset(),
            # Which API process answered (kawa serve --workers N runs several on one port).
            "pid": os.getpid(),
        }

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=True)
    def metrics() -> Response:  # a thread: it reads the stores (docs/observability.md)
        text, content_type = app.state.exposition.render()
        return Response(text, media_type=content_type)

    _install_error_handlers(app)
    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_TITLES = {403: "Not allowed", 404: "Not found", 400: "Bad request", 409: "Conflict"}


def _is_page(request: Request) -> bool:
    """Whether a failed request came from the web UI (answered with a page) rather than the API (JSON)."""
    path = request.url.path
    return not path.startswith(("/v1/", "/healthz", "/metrics", "/openapi", "/docs", "/kawa.js")) and (
        "text/html" in request.headers.get("accept", "") or bool(request.headers.get("hx-request"))
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _is_page(request):
            return ui.error_page(
                request, exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail)
            )
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "; ".join(parts))

    @app.exception_handler(BodyError)
    async def body_error(_: Request, exc: BodyError) -> JSONResponse:
        return _error(413 if isinstance(exc, PayloadTooLarge) else 400, str(exc))

    @app.exception_handler(Overloaded)
    async def overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(SQLError)
    async def sql_error(_: Request, exc: SQLError) -> JSONResponse:
        return _error(400, str(exc))
