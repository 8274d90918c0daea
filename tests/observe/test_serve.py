"""Observability of a real `kawa serve`: /metrics after good and bad events and predictions, JSON logs
with request ids, and `kawa status` on the running project."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kawa.config import load_config
from kawa.models import Registry
from kawa.pipelines.runs import FAILED, SUCCEEDED, RunStore
from kawa.runtime import Runtime
from tests.conftest import Server, kawa
from tests.triggers.conftest import buyer_bundle, wait_until

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]

FEATURES = """
from kawa.triggers import Trigger

buyer = Trigger("buyer_on_view", on={"event_name": "view"}, key="keys.user_id", model="buyer")
"""
GOOD = [
    {"event_name": "view", "event_id": f"v{i}", "keys": {"user_id": f"u{i}"}, "price": 60.0} for i in range(3)
]
pytestmark = pytest.mark.slow  # one kawa serve for the module, with two API processes

BAD_LINES = [
    json.dumps({"event_name": "view", "keys": {}}),  # no user_id or visitor_id
    json.dumps({"keys": {"user_id": "x"}}),  # no event_name
    '{"event_name": "view", "keys": ',  # not JSON
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    """Two API processes on Redis; JSON logs with an access log; a trigger and its model; two runs."""
    root = tmp_path_factory.mktemp("observe")
    env = {
        "KAWA__STORES__EVENT_LOG": redis_server.url,
        "KAWA__STORES__ONLINE": redis_server.url,
        "KAWA__SERVER__WORKERS": "2",
        "KAWA__SERVER__LOG_FORMAT": "json",
        "KAWA__SERVER__ACCESS_LOG": "true",
    }
    srv = Server(root, env=env)
    (root / "features.py").write_text(FEATURES)
    runtime = Runtime(load_config(root / "kawa.yaml", env=env))
    registry = Registry.from_runtime(runtime)
    registry.promote(srv.project, "buyer", registry.register(srv.project, "buyer", buyer_bundle()))
    runs = RunStore(runtime.metadata)
    for status in (SUCCEEDED, FAILED):
        run = runs.create(project=srv.project, pipeline="nightly", experiment="default", kind="manual",
                          params={}, logical_date=None, steps=[])  # fmt: skip
        runs.finish(run.run_id, status=status, metrics={}, artifacts=[], error=None)
    registry.close()
    runtime.close()
    with srv:
        yield srv


def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (name, labels), from whichever API process takes the connection."""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def test_metrics_count_events_by_reason_predictions_runs_and_lags(served: Server) -> None:
    body = "\n".join([*(json.dumps(e) for e in GOOD), *BAD_LINES]).encode()
    with served.client("write") as client:
        r = client.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200 and (r.json()["accepted"], r.json()["rejected"]) == (3, 3), r.text
    with served.client("read") as client:
        r = client.post("/v1/models/buyer/predict", json={"price": 50.0})
    assert r.status_code == 200 and r.json()["version"] == 1, r.text

    def caught_up() -> bool:
        found = scrape(served)
        return (
            value(found, "kawa_log_lag_bytes", consumer="lake")
            == 0
            == value(found, "kawa_log_lag_bytes", consumer="scored")
            and total(found, "kawa_trigger_scored_total") == 3
        )

    deadline = time.monotonic() + 30
    while not caught_up():  # each look is a scrape: not too often
        assert time.monotonic() < deadline, "the lake or the trigger worker did not catch up"
        time.sleep(0.2)
    found = scrape(served)
    project = served.project
    assert value(found, "kawa_events_accepted_total", project=project) == 3
    assert value(found, "kawa_events_rejected_total", project=project, reason="missing_field") == 2
    assert value(found, "kawa_events_rejected_total", project=project, reason="invalid_json") == 1
    assert total(found, "kawa_events_rejected_total") == 3
    assert value(found, "kawa_ingest_seconds_count") == 1  # one ingest request
    request = {"project": project, "model": "buyer", "version": "1", "path": "request"}
    assert value(found, "kawa_predict_seconds_count", **request) == 1
    # Counted in the trigger worker's process, served by the API's: the processes share one /metrics.
    assert 1 <= total(found, "kawa_predict_seconds_count", path="trigger", version="1") <= 3
    end = httpx.get(served.url + "/healthz").json()["event_log_offset"]
    assert end > 0
    assert value(found, "kawa_log_offset_bytes", position="acknowledged") == end
    assert value(found, "kawa_log_offset_bytes", position="lake") == end
    assert value(found, "kawa_log_offset_bytes", position="scored") == end
    assert value(found, "kawa_pipeline_runs", project=project, pipeline="nightly", status="succeeded") == 1
    assert value(found, "kawa_pipeline_runs", project=project, pipeline="nightly", status="failed") == 1

    # Bad events only: the rejected counter moves, the accepted one and the log's lag do not.
    with served.client("write") as client:
        client.post(
            "/v1/events", content=BAD_LINES[2].encode(), headers={"Content-Type": "application/x-ndjson"}
        )
    later = scrape(served)
    assert value(later, "kawa_events_rejected_total", project=project, reason="invalid_json") == 2
    assert value(later, "kawa_events_accepted_total", project=project) == 3
    assert value(later, "kawa_ingest_seconds_count") == 2

    # Each API process answers with the totals of all: new connections reach both, and all agree.
    answers: dict[int, float | None] = {}
    for _ in range(40):
        with httpx.Client(base_url=served.url, timeout=30) as client:
            pid = client.get("/healthz").json()["pid"]
            text = client.get("/metrics").text
        families = text_string_to_metric_families(text)
        samples = {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}
        answers[pid] = value(samples, "kawa_events_accepted_total", project=project)
        if len(answers) == 2:
            break
    assert len(answers) == 2 and set(answers.values()) == {3}


def test_json_log_lines_carry_the_request_id(served: Server) -> None:
    r = httpx.get(served.url + "/healthz", headers={"X-Request-ID": "obs-test-42"})
    assert r.headers["x-request-id"] == "obs-test-42"
    first = httpx.get(served.url + "/healthz").headers["x-request-id"]
    second = httpx.get(served.url + "/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{24}", first) and first != second
    # An id with a line break would forge log lines: it is replaced, not repeated.
    forged = httpx.get(served.url + "/healthz", headers={"X-Request-ID": "a b"}).headers["x-request-id"]
    assert forged != "a b"

    def logged() -> list[dict[str, Any]]:
        return [line for line in map(json.loads, list(served.log)) if line.get("request_id") == "obs-test-42"]

    wait_until(lambda: bool(logged()))
    (line,) = logged()
    assert line["part"] in ("api", "api-2") and line["logger"] == "kawa.access" and line["level"] == "INFO"
    assert line["message"].startswith("GET /healthz 200")
    # Every line kawa serve printed is one JSON object, its own and its parts' alike.
    lines = [json.loads(text) for text in served.log]
    assert {"kawa", "api", "lake"} <= {line["part"] for line in lines}
    assert any(line["part"] == "kawa" and line["message"].startswith("ready at") for line in lines)


def test_status_of_the_running_project_is_healthy(served: Server) -> None:
    settings = {k: v for k, v in served.env.items() if k.startswith("KAWA__")}  # its Redis stores
    done = kawa("status", "--json", cwd=served.root, check=False, env=settings)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    checks = {c["name"]: (c["backend"], c["status"]) for c in report["checks"]}
    assert checks == {
        "event_log": ("redis", "ok"), "lake": ("parquet+duckdb", "ok"), "online": ("redis", "ok"),
        "metadata": ("sqlite", "ok"), "artifacts": ("local", "ok"), "executor": ("local", "ok"),
        "serve/api": (served.url, "ok"), "serve/api-2": ("kawa serve", "ok"),
        "serve/lake": ("kawa serve", "ok"), "serve/triggers": ("kawa serve", "ok"),
        "serve/bandits": ("kawa serve", "ok"), "serve/scheduler": ("kawa serve", "ok"),
    }  # fmt: skip
    end = httpx.get(served.url + "/healthz").json()["event_log_offset"]
    assert report["lags"] == {
        "acknowledged_offset": end, "lake_offset": end, "lake_lag_bytes": 0, "scored_offset": end,
        "scored_lag_bytes": 0,
    }  # fmt: skip
