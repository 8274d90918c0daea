"""The status message every run sends when it ends (succeeded, failed, timeout, cancelled), to every sink.

Sinks: the log (always), the webhook of `notify.webhook` in kawa.yaml (if set), and the event log as a
`pipeline_run_finished` event (always; see `kawa.pipelines.events`), so triggers can react to a run.

The webhook gets the message as JSON. For Slack and the chat tools that accept Slack's incoming-webhook
format (Mattermost, Rocket.Chat, Discord's `/slack` endpoint) it also carries a `text` line for people:
kawa adds it when the URL's host is `hooks.slack.com`, or when the URL is written `slack+https://...`
(kawa posts to the URL without `slack+`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from kawa.pipelines.runs import RunRecord
    from kawa.runtime import Runtime

log = logging.getLogger("kawa.pipelines.status")

WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 0.5
# Answers worth another try; other 4xx mean the request itself is wrong and would fail again.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def status_message(run: RunRecord) -> dict[str, Any]:
    """The message for a finished run; model_id and version name the model a step registered, if any."""
    model = _registered_model(run)
    return {
        "project": run.project,
        "pipeline": run.pipeline,
        "run_id": run.run_id,
        "experiment": run.experiment,
        "status": run.status,
        "model_id": model.get("name"),
        "version": model.get("version"),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "error": _headline(run.error),
    }


def finish_message(runtime: Runtime, run: RunRecord) -> dict[str, Any]:
    """Send the status message of the finished `run` to every sink; never raises.

    Returns what the run's record keeps: the message sent, how the log and webhook took it
    (`delivery`), and how the event log took the `pipeline_run_finished` event (`event_log`).
    """
    from kawa.pipelines.events import publish_finished

    message = status_message(run)
    notify = runtime.config.notify
    receipts = deliver(message, notify.webhook, timeout_s=notify.timeout_s)
    try:
        event = publish_finished(runtime, run, message)
    except Exception as exc:  # the run's outcome must not depend on its notification
        event = {"sink": "event_log", "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"sent": message, "delivery": receipts, "event_log": event}


def slack_text(message: dict[str, Any]) -> str:
    """The one line a person reads in the chat channel.

    >>> slack_text({"pipeline": "daily", "status": "failed", "run_id": "ab12", "error": "step 'x' failed"})
    ":x: pipeline daily failed (run ab12): step 'x' failed"
    """
    icon = {"succeeded": ":white_check_mark:", "cancelled": ":no_entry_sign:", "timeout": ":hourglass:"}
    text = f"{icon.get(str(message.get('status')), ':x:')} pipeline {message.get('pipeline')} "
    text += f"{message.get('status')} (run {message.get('run_id')})"
    if message.get("model_id"):
        text += f", model {message['model_id']} v{message.get('version')}"
    if message.get("error"):
        text += f": {message['error']}"
    return text


def deliver(
    message: dict[str, Any],
    webhook: str | None,
    *,
    timeout_s: float = 5.0,
    attempts: int = WEBHOOK_ATTEMPTS,
    backoff_s: float = WEBHOOK_BACKOFF_S,
) -> list[dict[str, Any]]:
    """Send `message` to the log and the webhook; never raises. Returns how each took it, for the record."""
    text = json.dumps(message, default=str)
    level = logging.INFO if message.get("status") == "succeeded" else logging.WARNING
    log.log(level, "pipeline run finished: %s", text)
    receipts: list[dict[str, Any]] = [{"sink": "log", "ok": True}]
    if webhook:
        url, slack = _slack(webhook)
        body = json.dumps({"text": slack_text(message), **message}, default=str) if slack else text
        receipts.append(_post(url, body, timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s))
    return receipts


def _slack(url: str) -> tuple[str, bool]:
    """The URL to post to, and whether it takes Slack's format (see the module doc)."""
    if url.startswith("slack+"):
        return url[len("slack+") :], True
    return url, _host(url).lower().split(":")[0] == "hooks.slack.com"


def _post(url: str, body: str, *, timeout_s: float, attempts: int, backoff_s: float) -> dict[str, Any]:
    # Webhook URLs often carry a secret in their path (Slack, Teams): record only where it went.
    receipt: dict[str, Any] = {"sink": "webhook", "host": _host(url), "ok": False, "attempts": 0}
    headers = {"content-type": "application/json", "user-agent": "kawa-pipelines"}
    try:
        with httpx.Client(timeout=timeout_s) as client:
            for attempt in range(1, max(1, attempts) + 1):
                receipt["attempts"] = attempt
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.UnsupportedProtocol as exc:
                    receipt["error"] = f"{type(exc).__name__}: {exc}"
                    break  # the URL itself is wrong; trying again cannot help
                except httpx.HTTPError as exc:
                    receipt["error"] = f"{type(exc).__name__}: {exc}"
                else:
                    receipt["status_code"] = response.status_code
                    if response.is_success:
                        receipt["ok"] = True
                        receipt.pop("error", None)
                        return receipt
                    receipt["error"] = f"HTTP {response.status_code}"
                    if response.status_code not in _RETRY_STATUS:
                        break
                if attempt < attempts:
                    time.sleep(backoff_s * 2 ** (attempt - 1))
    except Exception as exc:  # a malformed URL, say: the run's outcome must not depend on its webhook
        receipt["error"] = f"{type(exc).__name__}: {exc}"
    log.warning(
        "status webhook at %s failed after %d attempt(s): %s",
        receipt["host"],
        receipt["attempts"],
        receipt.get("error"),
    )
    return receipt


def _host(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return "(malformed URL)"


def _registered_model(run: RunRecord) -> dict[str, Any]:
    # The last step that registered a model names it (a pipeline that trains twice reports the last).
    for step in reversed(run.steps):
        model = step.outputs.get("model")
        if isinstance(model, dict) and model.get("name") is not None:
            return model
    return {}


def _headline(error: str | None) -> str | None:
    """The last line of a traceback (`ValueError: ...`), prefixed by the step line when there is one."""
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else None
    return f"{lines[0]} {lines[-1]}" if lines[0].startswith("step ") else lines[-1]
