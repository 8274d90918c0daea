"""Every ending of a run reaches every sink: Slack-style webhook JSON and a `pipeline_run_finished` event."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kawa.config import load_config
from kawa.events.schema import LogBatch
from kawa.pipelines import Pipeline, RunContext, SubprocessExecutor, run_pipeline, step
from kawa.pipelines.notify import slack_text
from kawa.runtime import Runtime
from kawa.stores.eventlog import open_event_log
from tests.conftest import Server
from tests.pipelines.conftest import Webhook, make_runtime


@step
def train(ctx: RunContext, outcome: str) -> int:
    ctx.outputs["model"] = {"name": "loyalty", "version": 7}
    if outcome == "fail":
        raise ValueError("holdout AUC below the baseline")
    if outcome == "interrupt":
        raise KeyboardInterrupt
    if outcome == "hang":
        time.sleep(60)
    return 1


@step(timeout_s=1.0)
def train_briefly(ctx: RunContext, outcome: str) -> int:
    return int(train.fn(ctx, outcome))


training = Pipeline("training", steps=[train], params={"outcome": "ok"})
bounded = Pipeline("bounded", steps=[train_briefly], params={"outcome": "ok"})


def _events(runtime: Runtime) -> list[dict[str, Any]]:
    """Every event in the project's event log, decoded."""
    log = open_event_log("files", runtime.state_path)
    try:
        found, offset = [], 0
        while True:
            result = log.read(offset)
            for record in result.records:
                batch = msgspec.msgpack.decode(record.payload, type=LogBatch)
                if batch.kind == "E":
                    found.extend(json.loads(line) for line in batch.body.split(b"\n"))
            if result.next_offset == offset:
                return found
            offset = result.next_offset
    finally:
        log.close()


def test_a_slack_webhook_gets_a_text_line_and_the_details(tmp_path: Path, webhook: Webhook) -> None:
    runtime = make_runtime(tmp_path, "slack+" + webhook.url)
    try:
        record = run_pipeline(runtime, training, {"outcome": "fail"})
    finally:
        runtime.close()
    (sent,) = webhook.received
    assert sent["text"] == (
        f":x: pipeline training failed (run {record.run_id}), model loyalty v7: "
        "step 'train' failed: ValueError: holdout AUC below the baseline"
    )
    assert sent["status"] == "failed" and sent["run_id"] == record.run_id and sent["model_id"] == "loyalty"
    assert record.message is not None and record.message["delivery"][1]["ok"] is True


def test_slack_text_names_each_ending() -> None:
    base = {"pipeline": "daily", "run_id": "r1", "error": None}
    ok = slack_text({**base, "status": "succeeded"})
    assert ok == ":white_check_mark: pipeline daily succeeded (run r1)"
    assert slack_text({**base, "status": "timeout"}).startswith(":hourglass: pipeline daily timeout")
    assert slack_text({**base, "status": "cancelled"}).startswith(":no_entry_sign: pipeline daily cancelled")


def test_every_ending_lands_in_the_event_log_as_pipeline_run_finished(runtime: Runtime) -> None:
    ok = run_pipeline(runtime, training)
    failed = run_pipeline(runtime, training, {"outcome": "fail"})
    timed_out = run_pipeline(runtime, bounded, {"outcome": "hang"}, executor=SubprocessExecutor())
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(runtime, training, {"outcome": "interrupt"})
    events = [e for e in _events(runtime) if e["event_name"] == "pipeline_run_finished"]
    assert [e["status"] for e in events] == ["succeeded", "failed", "timeout", "cancelled"]
    first = events[0]
    assert first["run_id"] == ok.run_id and first["pipeline"] == "training" and first["kind"] == "manual"
    assert first["event_id"] == f"pipeline-run-{ok.run_id}"
    assert first["keys"] == {"visitor_id": "kawa:pipeline:training"}
    assert (first["model_id"], first["version"]) == ("loyalty", 7)
    assert events[1]["run_id"] == failed.run_id and "holdout AUC" in events[1]["error"]
    assert events[2]["run_id"] == timed_out.run_id
    for record in (ok, failed, timed_out):
        assert record.message is not None
        assert record.message["event_log"] == {"sink": "event_log", "via": "append", "ok": True}


@pytest.mark.slow
def test_with_a_server_running_the_event_is_posted_to_it(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        # The server listens on a free port given by --port, not kawa.yaml's: the run finds it all the same.
        runtime = Runtime(load_config(tmp_path / "kawa.yaml"))
        assert runtime.config.server.port != server.port
        try:
            record = run_pipeline(runtime, training)
        finally:
            runtime.close()
        assert record.message is not None
        receipt = record.message["event_log"]
        assert (receipt["via"], receipt["ok"], receipt["status_code"]) == ("http", True, 200)
        query = (
            "SELECT properties->>'run_id', properties->>'status' FROM events "
            "WHERE event_name = 'pipeline_run_finished'"
        )
        assert server.wait_for(query, [[record.run_id, "succeeded"]]) == [[record.run_id, "succeeded"]]
    finally:
        server.stop()
