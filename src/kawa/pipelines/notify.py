"""The status message every run sends when it ends, success or failure: a log line and a webhook POST."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from kawa.pipelines.runs import RunRecord

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


def deliver(
    message: dict[str, Any],
    webhook: str | None,
    *,
    timeout_s: float = 5.0,
    attempts: int = WEBHOOK_ATTEMPTS,
    backoff_s: float = WEBHOOK_BACKOFF_S,
) -> list[dict[str, Any]]:
    """Send `message` to every sink; never raises. Returns how each sink took it, for the run's record."""
    text = json.dumps(message, default=str)
    level = logging.INFO if message.get("status") == "succeeded" else logging.WARNING
    log.log(level, "pipeline run finished: %s", text)
    receipts: list[dict[str, Any]] = [{"sink": "log", "ok": True}]
    if webhook:
        receipts.append(_post(webhook, text, timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s))
    return receipts


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
