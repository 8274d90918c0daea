"""`POST /v1/events` answered ahead of FastAPI's router (kawa.api._fast) gives, byte for byte, the
answers FastAPI's own route gives (status, headers, body, access log line), stores the same events
and rejections, and counts them in the same metrics; the browser CORS and origin gate still apply."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY
from starlette.types import ASGIApp

from kawa.api import create_app
from kawa.auth import generate_keys
from kawa.config import ProjectKeys
from kawa.runtime import Runtime
from tests.api.test_fast_routes import (
    Answer,
    Case,
    PassedOn,
    access_lines,
    app_config,
    assert_same,
    bearer,
    call,
    without_fast_routes,
)

PROJECT, OTHER = "shop", "rival"
SITE, STRANGER = "https://shop.example", "https://elsewhere.example"
KEYS = ProjectKeys(**msgspec.structs.asdict(generate_keys()) | {"allowed_origins": [SITE]})
OTHER_KEYS = generate_keys()
LIMIT = 16_384  # ingest.max_body_bytes
MAX_EVENTS = 50  # ingest.max_events_per_request

WRITE, READ = bearer(KEYS.write_key), bearer(KEYS.read_key)
JSON = [(b"content-type", b"application/json")]
NDJSON = [(b"content-type", b"application/x-ndjson")]
GZIP = [(b"content-encoding", b"gzip")]


def event(name: str = "viewed", **extra: Any) -> dict[str, Any]:
    return {"event_name": name, "keys": {"user_id": "u1"}, "properties": {"page": "/"}, **extra}


def body(*events: Any) -> list[bytes]:
    return [msgspec.json.encode(list(events))]


def lines(*events: dict[str, Any]) -> bytes:
    return b"\n".join(msgspec.json.encode(e) for e in events) + b"\n"


def with_key(key: str) -> dict[str, Any]:
    return event(keys={"user_id": "u2", "api_key": key})


def origin(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"origin", value.encode()), (b"host", b"127.0.0.1:8642")]


BASIC = [(b"authorization", b"Basic " + base64.b64encode(KEYS.write_key.encode() + b":"))]
PATH = "/v1/events"
CASES = {
    "batch": Case("POST", PATH, 200, WRITE + JSON, body(event(), event("bought"), event())),
    "one event": Case("POST", PATH, 200, WRITE + JSON, [msgspec.json.encode(event())]),
    "ndjson": Case(
        "POST", PATH, 200, WRITE + NDJSON, [lines(event(), event())[:30], lines(event(), event())[30:]]
    ),
    "text/plain lines": Case(
        "POST", PATH, 200, [*WRITE, (b"content-type", b"text/plain")], [lines(event(), event("x"))]
    ),
    "gzip": Case("POST", PATH, 200, WRITE + NDJSON + GZIP, [gzip.compress(lines(event(), event()))]),
    "basic auth": Case("POST", PATH, 200, BASIC + JSON, body(event())),
    "a query": Case("POST", PATH, 200, WRITE + JSON, body(event()), b"source=web"),
    "partly bad batch": Case("POST", PATH, 200, WRITE + JSON, body(event(), {"keys": {}}, event("ok"), 7)),
    "all bad": Case("POST", PATH, 400, WRITE + JSON, body({"event_name": ""}, {"keys": {"user_id": "u"}})),
    "not json": Case("POST", PATH, 400, WRITE + JSON, [b'{"event_name": ']),
    "bad gzip": Case("POST", PATH, 400, WRITE + GZIP, [b"not gzip at all"]),
    "brotli": Case("POST", PATH, 400, [*WRITE, (b"content-encoding", b"br")], body(event())),
    "no key": Case("POST", PATH, 401, JSON, body(event())),
    "unknown key": Case("POST", PATH, 401, bearer("kw_w_" + "x" * 40), body(event())),
    "bad basic": Case("POST", PATH, 401, [(b"authorization", b"Basic !!")], body(event())),
    "read key": Case("POST", PATH, 403, READ + JSON, body(event())),
    "key in the body": Case("POST", PATH, 200, JSON, body(with_key(KEYS.write_key), event())),
    "other project's key in the body": Case("POST", PATH, 200, JSON, body(with_key(OTHER_KEYS.write_key))),
    "mixed keys in the body": Case(
        "POST", PATH, 200, JSON, body(with_key(KEYS.write_key), with_key(OTHER_KEYS.write_key), event())
    ),
    "read key in the body": Case("POST", PATH, 401, JSON, body(with_key(KEYS.read_key))),
    "too large": Case("POST", PATH, 413, WRITE, [b" " * LIMIT, body(event())[0]]),
    "declared too large": Case(
        "POST", PATH, 413, [*WRITE, (b"content-length", str(LIMIT + 1).encode())], body(event())
    ),
    "gzip bomb": Case("POST", PATH, 413, WRITE + GZIP, [gzip.compress(b" " * 4 * LIMIT)]),
    "too many events": Case("POST", PATH, 413, WRITE + NDJSON, [lines(*[event()] * (MAX_EVENTS + 1))]),
    "stalled": Case("POST", PATH, 408, WRITE, [b'{"event_name"'], stall=True),
    "overloaded": Case("POST", PATH, 503, WRITE + JSON, body(event())),
    "allowed origin": Case("POST", PATH, 200, WRITE + origin(SITE), body(event())),
    "allowed origin, key in the body": Case(
        "POST",
        PATH,
        200,
        [*origin(SITE), (b"content-type", b"text/plain")],
        [lines(with_key(KEYS.write_key))],
    ),
    "any origin for the other project": Case(
        "POST", PATH, 200, origin(STRANGER), body(with_key(OTHER_KEYS.write_key))
    ),
    # Refused by the origin gate before the fast layer or FastAPI sees them (so not passed on either).
    "refused origin": Case("POST", PATH, 403, WRITE + origin(STRANGER), body(event())),
    "refused origin, key in the body": Case(
        "POST", PATH, 403, origin(STRANGER), body(with_key(KEYS.write_key))
    ),
    # Passed to FastAPI.
    "get": Case("GET", PATH, 405, WRITE, fast=False),
    "trailing slash": Case("POST", PATH + "/", 307, WRITE + JSON, body(event()), fast=False),
}
OVERLOADED = {"overloaded"}  # answered while the collector takes no more requests


def counted(name: str) -> float:
    """A kawa_events_* counter summed over its labels."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == name + "_total"
    )


@dataclass
class Stored:
    records: int  # event log records appended (events and rejections)
    accepted: float
    rejected: float
    timed: float  # kawa_ingest_seconds observations


def stored(runtime: Runtime) -> Stored:
    timed = sum(
        s.value for m in REGISTRY.collect() for s in m.samples if s.name == "kawa_ingest_seconds_count"
    )
    return Stored(
        runtime.event_log.end_offset(),
        counted("kawa_events_accepted"),
        counted("kawa_events_rejected"),
        timed,
    )


def delta(after: Stored, before: Stored) -> Stored:
    return Stored(*(a - b for a, b in zip(vars(after).values(), vars(before).values(), strict=True)))


@dataclass
class Answers:
    fast: dict[str, Answer]
    reference: dict[str, Answer]
    passed_on: set[str]
    stored: tuple[Stored, Stored]  # what each pass stored and counted: fast, reference


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Answers]:
    folder: Path = tmp_path_factory.mktemp("fast-ingest")
    projects = {PROJECT: KEYS, OTHER: OTHER_KEYS}
    config = app_config(folder, projects, max_body_bytes=LIMIT, max_events_per_request=MAX_EVENTS)
    runtime = Runtime(config, log_writer=True)
    app = create_app(runtime)
    reference = without_fast_routes(app)

    async def run(lines: list[tuple[str, str | None]]) -> Answers:
        answers: tuple[dict[str, Answer], dict[str, Answer]] = ({}, {})
        async with app.router.lifespan_context(app):
            collector = app.state.collector
            full = msgspec.structs.replace(collector.config, max_pending_requests=0)
            passed_on = PassedOn(app)
            counts = [stored(runtime)]
            targets: tuple[ASGIApp, ASGIApp] = (app, reference)
            for target, into in zip(targets, answers, strict=True):
                for name, case in CASES.items():
                    passed_on.current = name if target is app else ""
                    collector.config = full if name in OVERLOADED else config.ingest
                    into[name] = await call(target, case, f"ingest-{len(into)}", lines)
                collector.config = config.ingest
                counts.append(stored(runtime))
        deltas = (delta(counts[1], counts[0]), delta(counts[2], counts[1]))
        return Answers(*answers, passed_on.names - {""}, deltas)

    with access_lines() as lines:
        yield asyncio.run(run(lines))


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_layer_answers_events_as_fastapi_does(answers: Answers, name: str) -> None:
    assert_same(answers.fast[name], answers.reference[name], CASES[name], name in answers.passed_on)


def test_both_store_and_count_the_same_events(answers: Answers) -> None:
    fast, reference = answers.stored
    assert fast == reference
    assert fast.accepted >= 20 and fast.rejected >= 7 and fast.records > 0 and fast.timed > 10


def test_ingest_answers_say_what_happened(answers: Answers) -> None:
    def result(name: str) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(answers.fast[name].body)
        return decoded

    assert result("batch") == {"accepted": 3, "rejected": 0, "errors": []}
    assert result("ndjson")["accepted"] == 2 and result("gzip")["accepted"] == 2
    partly = result("partly bad batch")
    assert (partly["accepted"], partly["rejected"]) == (2, 2)
    assert [e["index"] for e in partly["errors"]] == [1, 3]
    mixed = result("mixed keys in the body")
    assert (mixed["accepted"], mixed["rejected"]) == (1, 2)
    assert "another project" in mixed["errors"][0]["reason"]
    assert answers.fast["batch"].route == "/v1/events"
    assert (b"retry-after", b"1") in answers.fast["overloaded"].headers
    assert (b"access-control-allow-origin", SITE.encode()) in answers.fast["allowed origin"].headers
    assert b"allowed_origins" in answers.fast["refused origin"].body
    assert b"write key" in answers.fast["no key"].body
    assert b"use a write key" in answers.fast["read key"].body
