"""The status message: always sent when a run ends, to the log and to a real local webhook."""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from pathlib import Path

import pytest

from kawa.pipelines import Pipeline, RunContext, RunStore, deliver, run_pipeline, step
from tests.pipelines.conftest import Webhook, make_runtime

MESSAGE_KEYS = {
    "project",
    "pipeline",
    "run_id",
    "experiment",
    "status",
    "model_id",
    "version",
    "started_at",
    "finished_at",
    "error",
}


@step
def train(ctx: RunContext, register: bool) -> int:
    if register:
        ctx.outputs["model"] = {"name": "loyalty", "version": 7}
    return 1


@step
def evaluate(train: int, fail: bool) -> None:
    if fail:
        raise ValueError("holdout AUC below the baseline")


training = Pipeline("training", steps=[train, evaluate], params={"fail": False, "register": True})


def test_success_is_posted_to_the_webhook_with_the_registered_model(tmp_path: Path, webhook: Webhook) -> None:
    runtime = make_runtime(tmp_path, webhook.url)
    try:
        record = run_pipeline(runtime, training, experiment="dev")
    finally:
        runtime.close()
    assert len(webhook.received) == 1
    sent = webhook.received[0]
    assert set(sent) == MESSAGE_KEYS
    assert sent["pipeline"] == "training" and sent["run_id"] == record.run_id
    assert (sent["status"], sent["experiment"], sent["error"]) == ("succeeded", "dev", None)
    assert (sent["model_id"], sent["version"]) == ("loyalty", 7)
    assert datetime.fromisoformat(sent["started_at"]) <= datetime.fromisoformat(sent["finished_at"])
    assert record.message is not None and record.message["sent"] == sent
    assert [r["ok"] for r in record.message["delivery"]] == [True, True]


def test_failure_is_posted_too_with_the_error(tmp_path: Path, webhook: Webhook) -> None:
    runtime = make_runtime(tmp_path, webhook.url)
    try:
        record = run_pipeline(runtime, training, {"fail": "true", "register": "false"})
        stored = RunStore(runtime.metadata).get(record.run_id)
    finally:
        runtime.close()
    assert len(webhook.received) == 1
    sent = webhook.received[0]
    assert sent["status"] == "failed" and sent["run_id"] == record.run_id
    assert sent["error"] == "step 'evaluate' failed: ValueError: holdout AUC below the baseline"
    assert sent["model_id"] is None and sent["version"] is None
    # What was sent is kept with the run.
    assert stored is not None and stored.message is not None and stored.message["sent"] == sent


def test_a_webhook_that_answers_500_is_retried(tmp_path: Path, webhook: Webhook) -> None:
    webhook.statuses = [500, 503]
    runtime = make_runtime(tmp_path, webhook.url)
    try:
        record = run_pipeline(runtime, training)
    finally:
        runtime.close()
    assert [m["run_id"] for m in webhook.received] == [record.run_id] * 3
    assert record.message is not None
    assert record.message["delivery"][1] == {
        "sink": "webhook",
        "host": webhook.url.split("/")[2],
        "ok": True,
        "attempts": 3,
        "status_code": 204,
    }


def test_a_dead_webhook_does_not_fail_the_run(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runtime = make_runtime(tmp_path, f"http://127.0.0.1:{port}/hook/secret-token")
    try:
        record = run_pipeline(runtime, training)
    finally:
        runtime.close()
    assert record.status == "succeeded"
    assert record.message is not None
    receipt = record.message["delivery"][1]
    assert receipt["ok"] is False and receipt["attempts"] == 3 and "ConnectError" in receipt["error"]
    # The secret part of the webhook URL is not kept with the run.
    assert "secret-token" not in str(record.message)


def test_a_client_error_from_the_webhook_is_not_retried(tmp_path: Path, webhook: Webhook) -> None:
    webhook.statuses = [404]
    runtime = make_runtime(tmp_path, webhook.url)
    try:
        record = run_pipeline(runtime, training)
    finally:
        runtime.close()
    assert record.status == "succeeded" and len(webhook.received) == 1
    assert record.message is not None and record.message["delivery"][1]["error"] == "HTTP 404"


def test_a_malformed_webhook_url_does_not_fail_the_run(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, "not a url")
    try:
        record = run_pipeline(runtime, training)
    finally:
        runtime.close()
    assert record.status == "succeeded"
    assert record.message is not None and record.message["delivery"][1]["ok"] is False


def test_the_message_is_logged_on_success_and_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = make_runtime(tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="kawa.pipelines.status"):
            ok = run_pipeline(runtime, training)
            bad = run_pipeline(runtime, training, {"fail": True})
    finally:
        runtime.close()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kawa.pipelines.status"]
    assert len(lines) == 2
    assert lines[0][0] == "INFO" and ok.run_id in lines[0][1] and '"status": "succeeded"' in lines[0][1]
    assert lines[1][0] == "WARNING" and bad.run_id in lines[1][1] and '"status": "failed"' in lines[1][1]
    assert ok.message is not None and ok.message["delivery"] == [{"sink": "log", "ok": True}]


def test_an_interrupted_run_is_cancelled_and_still_sends_its_message(
    tmp_path: Path, webhook: Webhook
) -> None:
    @step
    def slow() -> None:
        raise KeyboardInterrupt

    @step
    def after(slow: None) -> None:
        pass

    runtime = make_runtime(tmp_path, webhook.url)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(runtime, Pipeline("slow", steps=[slow, after]))
        (record,) = RunStore(runtime.metadata).list("shop")
        record = RunStore(runtime.metadata).get(record.run_id)  # type: ignore[assignment]
    finally:
        runtime.close()
    assert record is not None and record.status == "cancelled"
    assert [(s.step, s.status) for s in record.steps] == [("slow", "cancelled"), ("after", "cancelled")]
    assert [(m["run_id"], m["status"]) for m in webhook.received] == [(record.run_id, "cancelled")]


def test_deliver_never_raises() -> None:
    receipts = deliver({"status": "succeeded"}, "http://[::1", timeout_s=0.5, attempts=1)
    assert receipts[0] == {"sink": "log", "ok": True} and receipts[1]["ok"] is False
