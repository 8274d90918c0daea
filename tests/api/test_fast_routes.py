"""The prediction routes answered ahead of FastAPI's router (kawa.api._fast) give, byte for byte, the
answers FastAPI's own routes give: status, headers and body, log lines, metrics; and only the
requests the fast layer knows exactly are answered by it."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kawa.api import create_app
from kawa.api._fast import FastRoutes
from kawa.auth import generate_keys
from kawa.config import Config, IngestConfig, ProjectKeys, ServerConfig
from kawa.models import Registry
from kawa.observe.logs import request_id
from kawa.runtime import Runtime
from kawa.serving.online import PredictRequestError, parse_rows
from kawa.serving.store import Prediction, PredictionStore
from tests.triggers.conftest import buyer_bundle

PROJECT, OTHER = "shop", "rival"
KEYS, OTHER_KEYS = generate_keys(), generate_keys()
LIMIT = 4096  # ingest.max_body_bytes of this app, so a too-large body stays small
STALL_S = 0.3  # ingest.body_idle_timeout_s


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


READ, ADMIN, WRITE = bearer(KEYS.read_key), bearer(KEYS.admin_key), bearer(KEYS.write_key)
JSON = [(b"content-type", b"application/json")]


@dataclass
class Case:
    method: str
    path: str
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: READ)
    body: list[bytes] = field(default_factory=list)  # chunks; after the last, a stall when `stall`
    query: bytes = b""
    stall: bool = False
    fast: bool = True  # answered by the fast layer, not passed to FastAPI


def row(**values: Any) -> list[bytes]:
    return [msgspec.json.encode(values)]


CASES = {
    "get": Case("GET", "/v1/predictions/buyer/u1", 200),
    "get admin key": Case("GET", "/v1/predictions/buyer/u1", 200, ADMIN),
    "get escaped entity": Case("GET", "/v1/predictions/buyer/u 1", 200),
    "get unknown model": Case("GET", "/v1/predictions/nobody/u1", 404),
    "get unknown entity": Case("GET", "/v1/predictions/buyer/stranger", 404),
    "get no key": Case("GET", "/v1/predictions/buyer/u1", 401, []),
    "get bad key": Case("GET", "/v1/predictions/buyer/u1", 401, bearer("kawa_r_" + "x" * 40)),
    "get bad basic": Case("GET", "/v1/predictions/buyer/u1", 401, [(b"authorization", b"Basic !!")]),
    "get write key": Case("GET", "/v1/predictions/buyer/u1", 403, WRITE),
    "get other project's key": Case("GET", "/v1/predictions/buyer/u1", 404, bearer(OTHER_KEYS.read_key)),
    "post": Case("POST", "/v1/models/buyer/predict", 200, READ + JSON, row(price=60.0, media="TV")),
    "post rows": Case(
        "POST",
        "/v1/models/buyer/predict",
        200,
        READ,
        [b'[{"price": 20, "media": "TV"},', b'{"price": 60, "media": "Radio"}]'],
    ),
    "post version": Case("POST", "/v1/models/buyer/predict", 200, READ, row(price=60.0), b"version=2"),
    "post alias": Case("POST", "/v1/models/buyer/predict", 200, READ, row(price=60.0), b"alias=staging"),
    "post both": Case(
        "POST", "/v1/models/buyer/predict", 200, READ, row(price=6.0, media="TV"), b"alias=nope&version=1"
    ),
    "post unknown alias": Case("POST", "/v1/models/buyer/predict", 404, READ, row(), b"alias=nope"),
    "post unknown version": Case("POST", "/v1/models/buyer/predict", 404, READ, row(), b"version=9"),
    "post unknown model": Case("POST", "/v1/models/nobody/predict", 404, READ, row(price=1.0)),
    "post bad field": Case("POST", "/v1/models/buyer/predict", 422, READ, row(price="high", media="TV")),
    "post bad category": Case("POST", "/v1/models/buyer/predict", 422, READ, row(price=1, media="Fax")),
    "post bad row": Case("POST", "/v1/models/buyer/predict", 422, READ, [b'[{"price": 1}, 7]']),
    "post not json": Case("POST", "/v1/models/buyer/predict", 400, READ, [b'{"price": ']),
    "post scalar": Case("POST", "/v1/models/buyer/predict", 400, READ, [b"7"]),
    "post too deep": Case("POST", "/v1/models/buyer/predict", 400, READ, [b"[" * 40 + b"]" * 40]),
    "post gzip": Case(
        "POST",
        "/v1/models/buyer/predict",
        200,
        [*READ, (b"content-encoding", b"gzip")],
        [gzip.compress(b'{"price": 50, "media": "TV"}')],
    ),
    "post brotli": Case(
        "POST", "/v1/models/buyer/predict", 400, [*READ, (b"content-encoding", b"br")], [b"x"]
    ),
    "post too large": Case("POST", "/v1/models/buyer/predict", 413, READ, [b" " * LIMIT, b"{}"]),
    "post declared too large": Case(
        "POST", "/v1/models/buyer/predict", 413, [*READ, (b"content-length", str(LIMIT + 1).encode())]
    ),
    "post stalled": Case("POST", "/v1/models/buyer/predict", 408, READ, [b'{"price"'], stall=True),
    "post no key": Case("POST", "/v1/models/buyer/predict", 401, [], row(price=1.0)),
    "post write key": Case("POST", "/v1/models/buyer/predict", 403, WRITE, row(price=1.0)),
    "post other project's key": Case(
        "POST", "/v1/models/buyer/predict", 404, bearer(OTHER_KEYS.read_key), row(price=1.0)
    ),
    # Passed to FastAPI: what the fast layer does not read exactly.
    "get with a query": Case("GET", "/v1/predictions/buyer/u1", 200, query=b"fresh=1", fast=False),
    "head": Case("HEAD", "/v1/predictions/buyer/u1", 405, fast=False),
    "get trailing slash": Case("GET", "/v1/predictions/buyer/u1/", 307, fast=False),
    "put": Case("PUT", "/v1/models/buyer/predict", 405, fast=False),
    "post version 0": Case("POST", "/v1/models/buyer/predict", 422, READ, row(), b"version=0", fast=False),
    "post version word": Case(
        "POST", "/v1/models/buyer/predict", 422, READ, row(), b"version=two", fast=False
    ),
    "post version twice": Case(
        "POST", "/v1/models/buyer/predict", 200, READ, row(price=1.0), b"version=1&version=2", fast=False
    ),
    "post escaped alias": Case(
        "POST", "/v1/models/buyer/predict", 200, READ, row(price=1.0), b"alias=stag%69ng", fast=False
    ),
}


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    log: list[tuple[str, str | None]]
    route: str | None  # the route template spans are named after (http.route)


async def call(app: ASGIApp, case: Case, rid: str, lines: list[tuple[str, str | None]]) -> Answer:
    """`case` sent to `app` as a server would (the body in its chunks), and what came back."""
    chunks = list(case.body)
    headers = [*case.headers, (b"x-request-id", rid.encode())]
    if case.body and not any(name == b"content-length" for name, _ in headers):
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": case.method,
        "scheme": "http", "path": case.path, "raw_path": case.path.encode(), "query_string": case.query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8642), "state": {},
    }  # fmt: skip

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or case.stall}
        if case.stall:
            await asyncio.sleep(10 * STALL_S)
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    del lines[:]
    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    route = getattr(scope.get("route"), "path", None)
    return Answer(start["status"], list(start["headers"]), body, list(lines), route)


def without_fast_routes(app: FastAPI) -> ASGIApp:
    """The same app with FastAPI's routes answering everything (as before kawa.api._fast)."""
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not FastRoutes]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = kept

    async def reference(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as Starlette's own __call__ does
        await stack(scope, receive, send)

    return reference


class PassedOn:
    """Rebuilds `app`'s middleware stack with a probe behind FastRoutes: `names` gets `current`
    whenever the fast layer hands a request on to FastAPI."""

    def __init__(self, app: FastAPI) -> None:
        self.names: set[str] = set()
        self.current = ""
        app.middleware_stack = app.build_middleware_stack()
        layer: Any = app.middleware_stack
        while not isinstance(layer, FastRoutes):
            layer = layer.app
        inner = layer.app

        async def note(scope: Scope, receive: Receive, send: Send) -> None:
            self.names.add(self.current)
            await inner(scope, receive, send)

        layer.app = note


@contextmanager
def access_lines() -> Iterator[list[tuple[str, str | None]]]:
    """The `kawa.access` lines written meanwhile (see Lines)."""
    handler = Lines()
    access = logging.getLogger("kawa.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        access.removeHandler(handler)


class Lines(logging.Handler):
    """The access log's lines (without their timing) with the request id they were written under."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage().rsplit(" ", 1)[0], request_id.get()))


def predict_count(version: int) -> float:
    labels = {"project": PROJECT, "model": "buyer", "version": str(version), "path": "request"}
    return REGISTRY.get_sample_value("kawa_predict_seconds_count", labels) or 0.0


def app_config(folder: Path, projects: dict[str, ProjectKeys], **ingest: Any) -> Config:
    """The config of the apps these tests compare: access log on, a short stall limit."""
    return Config(
        project=next(iter(projects)),
        state_dir=str(folder / ".kawa"),
        projects=projects,
        server=ServerConfig(access_log=True),
        ingest=IngestConfig(**ingest, body_idle_timeout_s=STALL_S),
    )


@dataclass
class Answers:
    fast: dict[str, Answer]
    reference: dict[str, Answer]
    passed_on: set[str]  # cases the fast layer handed to FastAPI
    predicted: tuple[float, float]  # kawa_predict_seconds observations of version 1: fast, reference


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Answers]:
    folder: Path = tmp_path_factory.mktemp("fast")
    config = app_config(folder, {PROJECT: KEYS, OTHER: OTHER_KEYS}, max_body_bytes=LIMIT)
    runtime = Runtime(config, log_writer=True)
    registry = Registry.from_runtime(runtime)
    registry.promote(PROJECT, "buyer", registry.register(PROJECT, "buyer", buyer_bundle(strict=True)))
    v2 = registry.register(PROJECT, "buyer", buyer_bundle(flip=True))
    registry.promote(PROJECT, "buyer", v2, "staging")
    stamp = "2026-12-01T00:00:00.000Z"
    PredictionStore(runtime.online).put_many(
        PROJECT, "buyer", [(e, Prediction(0.25, 1, stamp)) for e in ("u1", "u 1")]
    )
    app = create_app(runtime)
    reference = without_fast_routes(app)

    async def run(lines: list[tuple[str, str | None]]) -> Answers:
        fast: dict[str, Answer] = {}
        slow: dict[str, Answer] = {}
        async with app.router.lifespan_context(app):
            passed_on = PassedOn(app)
            before = predict_count(1)
            for passed_on.current, case in CASES.items():
                fast[passed_on.current] = await call(app, case, f"fast-{len(fast)}", lines)
            middle = predict_count(1)
            for name, case in CASES.items():
                slow[name] = await call(reference, case, f"fast-{len(slow)}", lines)
        return Answers(fast, slow, passed_on.names, (middle - before, predict_count(1) - middle))

    try:
        with access_lines() as lines:
            yield asyncio.run(run(lines))
    finally:
        registry.close()


def assert_same(fast: Answer, reference: Answer, case: Case, passed_on: bool) -> None:
    """`fast` is `reference` to the byte, with one access line; `passed_on` when the case says so."""
    assert fast.status == case.status, fast.body
    assert (fast.status, fast.headers, fast.body) == (reference.status, reference.headers, reference.body)
    # One access line, under the request's own id, as through FastAPI.
    assert fast.log == reference.log and len(fast.log) == 1 and fast.log[0][1] is not None
    assert (b"x-request-id", fast.log[0][1].encode()) in fast.headers
    assert fast.route == reference.route
    assert passed_on is not case.fast


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_layer_answers_as_fastapi_does(answers: Answers, name: str) -> None:
    assert_same(answers.fast[name], answers.reference[name], CASES[name], name in answers.passed_on)


def test_errors_say_what_is_wrong(answers: Answers) -> None:
    assert b"price" in answers.fast["post bad field"].body
    assert b"media" in answers.fast["post bad category"].body
    assert b"row 1" in answers.fast["post bad row"].body
    assert (b"www-authenticate", b"Bearer") in answers.fast["get bad key"].headers
    assert msgspec.json.decode(answers.fast["get"].body)["score"] == 0.25
    assert answers.fast["get"].route == "/v1/predictions/{model}/{entity_id}"
    assert answers.fast["post"].route == "/v1/models/{name}/predict"


def test_predictions_made_by_the_fast_layer_are_timed(answers: Answers) -> None:
    # Version 1 (production) called: post, rows, both, gzip, and the two rows it refused.
    assert answers.predicted == (6, 6)


def test_the_depth_limit_of_predict_bodies_holds_on_both_sides() -> None:
    # Many brackets but shallow (the depth is measured), exactly the limit, and one level past it.
    assert len(parse_rows(b"[" + b",".join([b'{"a": [1]}'] * 40) + b"]", max_depth=3)) == 40
    assert parse_rows(b'{"a": [[1]]}', max_depth=3) == {"a": [[1]]}
    with pytest.raises(PredictRequestError, match="deeper than 3"):
        parse_rows(b'{"a": [[[1]]]}', max_depth=3)
