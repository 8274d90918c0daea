"""The hot routes, answered ahead of FastAPI's router with the routes' own functions.

Much of a prediction or ingest request's server time went to FastAPI, not to kawa: matching the path
against every route of every router, then solving the route's dependencies (BENCHMARKS.md, online
prediction and ingest). `FastRoutes` is the innermost of the app's middlewares, so the request id,
access log, spans, body limits and the browser CORS and origin gate wrap it as they wrap the router.
It answers exactly `GET /v1/predictions/{model}/{entity_id}`, `POST /v1/models/{name}/predict` (with
at most one plain `version` and one plain `alias` query) and `POST /v1/events` (whose route reads no
query) by calling the same functions as those routes, and turns their errors into answers with the
app's own exception handlers. Anything else, and anything unusual about these (another method, a
query it does not read, a root path), goes to FastAPI unchanged.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute, APIRouter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kawa.api import ingest, models, predictions

# The routes' own patterns: Starlette matches `{name}` as `[^/]+` against the percent-decoded path.
_PREDICTION = re.compile(r"/v1/predictions/([^/]+)/([^/]+)")
_PREDICT = re.compile(r"/v1/models/([^/]+)/predict")
# Queries of the predict route that need no decoding and that FastAPI reads as they are; any other
# (a repeated name, percent-escapes, version=0 or 007, another name) is FastAPI's to answer.
_QUERY = re.compile(rb"(version)=([1-9][0-9]{0,8})|(alias)=([A-Za-z0-9_.~-]{1,100})")

Answer = Callable[[Request], Awaitable[Response]]


class FastRoutes:
    """ASGI middleware: answers the hot routes itself; every other request passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = match(scope) if scope["type"] == "http" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        route, params, respond = answer
        # What the router puts in the scope when it picks a route (the span's http.route comes from it).
        scope.update(route=route, endpoint=route.endpoint, path_params=params)
        request = Request(scope, receive)
        try:
            response = await respond(request)
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # as from the router: logged by RequestContext, a 500 from Starlette
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)


def _route(router: APIRouter, endpoint: Callable[..., Any]) -> APIRoute:
    """The route of `endpoint`: what FastAPI's router puts in the scope when it picks it."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


_PREDICTION_ROUTE = _route(predictions.router, predictions.get_prediction)
_PREDICT_ROUTE = _route(models.router, models.predict_route)
_EVENTS_ROUTE = _route(ingest.router, ingest.post_events)


def match(scope: Scope) -> tuple[APIRoute, dict[str, Any], Answer] | None:
    """(the route, its path parameters, the answer) when `scope` is one of the hot routes."""
    if scope.get("root_path"):
        return None
    method, path = scope["method"], scope["path"]
    if method == "POST" and path == "/v1/events":
        return _EVENTS_ROUTE, {}, ingest.events_response
    if method == "GET" and not scope["query_string"]:
        found = _PREDICTION.fullmatch(path)
        if found is None:
            return None
        model, entity_id = found.groups()

        async def prediction(request: Request) -> Response:
            return predictions.stored_prediction(request, model, entity_id)

        return _PREDICTION_ROUTE, {"model": model, "entity_id": entity_id}, prediction
    if method == "POST":
        found = _PREDICT.fullmatch(path)
        query = _predict_query(scope["query_string"]) if found is not None else None
        if found is None or query is None:
            return None
        name = found.group(1)
        version, alias = query

        async def predicted(request: Request) -> Response:
            return await models.predict_response(request, name, version, alias)

        return _PREDICT_ROUTE, {"name": name}, predicted
    return None


def _predict_query(query: bytes) -> tuple[int | None, str] | None:
    """(version, alias) from a plain query of the predict route; None for one FastAPI must read.

    >>> _predict_query(b""), _predict_query(b"version=3"), _predict_query(b"alias=staging&version=2")
    ((None, 'production'), (3, 'production'), (2, 'staging'))
    >>> _predict_query(b"version=0"), _predict_query(b"version=1&version=2"), _predict_query(b"x=1")
    (None, None, None)
    """
    version: int | None = None
    alias: str | None = None
    for part in query.split(b"&") if query else ():
        found = _QUERY.fullmatch(part)
        if found is None:
            return None
        if found.group(1):
            if version is not None:
                return None
            version = int(found.group(2))
        else:
            if alias is not None:
                return None
            alias = found.group(4).decode("ascii")
    return version, "production" if alias is None else alias


def _handler(handlers: dict[Any, Callable[..., Any]], exc: Exception) -> Callable[..., Any] | None:
    """The app's handler for `exc`, found as Starlette's ExceptionMiddleware finds it (500s excepted)."""
    if isinstance(exc, HTTPException) and exc.status_code != 500 and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in handlers:
            return handlers[cls]
    return None
