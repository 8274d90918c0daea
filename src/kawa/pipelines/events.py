"""The `pipeline_run_finished` event: every finished run also lands in the project's event log.

So triggers and the lake see pipeline runs like any other event:

    {"event_name": "pipeline_run_finished", "event_id": "pipeline-run-<run_id>",
     "keys": {"visitor_id": "kawa:pipeline:<pipeline>"}, "timestamp": "<finished_at>",
     "pipeline": ..., "run_id": ..., "status": ..., "kind": ..., "logical_date": ..., ...}

The key is a visitor id, not a user id, so per-user features and counts never take a pipeline for a
user; the fixed event_id makes a repeated delivery land once.

How it gets there: the event log has one writer. When no process holds it (no `kawa serve` running
for this state folder), the run appends the event itself through the collector, the same path as
`POST /v1/events`. When a server holds it, the run posts the event to that server's `/v1/events` with
the project's write key from kawa.yaml, as any client would.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from kawa.pipelines.runs import RunRecord
    from kawa.runtime import Runtime

EVENT_NAME = "pipeline_run_finished"
_LOCK_TRIES = 5


def finished_event(run: RunRecord, message: dict[str, Any]) -> dict[str, Any]:
    """The event for a finished run (`message` is its status message)."""
    when = run.finished_at or run.created_at
    return {
        **{k: v for k, v in message.items() if k not in ("started_at", "finished_at")},
        "event_name": EVENT_NAME,
        "event_id": f"pipeline-run-{run.run_id}",
        "keys": {"visitor_id": f"kawa:pipeline:{run.pipeline}"},
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": run.kind,
        "logical_date": run.logical_date.isoformat() if run.logical_date else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": run.duration_s,
    }


def publish_finished(runtime: Runtime, run: RunRecord, message: dict[str, Any]) -> dict[str, Any]:
    """Put the run's event into the event log (see the module doc); returns how it went."""
    body = json.dumps(finished_event(run, message), default=str).encode()
    if runtime.log_writer:
        return _append(runtime, runtime.event_log, body, run.project)
    from kawa.stores.eventlog import open_event_log

    for attempt in range(_LOCK_TRIES):
        try:
            writer = open_event_log(runtime.config.stores.event_log, runtime.state_path, writer=True)
        except RuntimeError:
            # Held: by a server (then post to it), or for a moment by another run publishing its event.
            if attempt + 1 < _LOCK_TRIES:
                time.sleep(0.05 * (attempt + 1))
            continue
        try:
            return _append(runtime, writer, body, run.project)
        finally:
            writer.close()
    return _post(runtime, body, run.project)


def _append(runtime: Runtime, log: Any, body: bytes, project: str) -> dict[str, Any]:
    from kawa.events.collector import Collector

    result = Collector(log, runtime.config.ingest).ingest(body, project=project, ndjson=False)
    receipt: dict[str, Any] = {"sink": "event_log", "via": "append", "ok": result.accepted == 1}
    if result.errors:
        receipt["error"] = str(result.errors[0].get("reason"))
    return receipt


def _server_url(runtime: Runtime) -> str:
    """The running server's own URL (it may listen on a --port other than kawa.yaml's)."""
    from kawa.serve.worker import running_server_url

    found = running_server_url(runtime.state_path)
    if found is not None:
        return found
    host = runtime.config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{runtime.config.server.port}"


def _post(runtime: Runtime, body: bytes, project: str) -> dict[str, Any]:
    keys = runtime.config.projects.get(project)
    receipt: dict[str, Any] = {"sink": "event_log", "via": "http", "ok": False}
    if keys is None:
        receipt["error"] = (
            f"another process holds the event log and kawa.yaml has no keys for project {project!r}; "
            "add them with `kawa keys create`"
        )
        return receipt
    url = f"{_server_url(runtime)}/v1/events"
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"authorization": f"Bearer {keys.write_key}", "content-type": "application/json"},
            timeout=runtime.config.notify.timeout_s,
        )
    except httpx.HTTPError as exc:
        receipt["error"] = f"{type(exc).__name__}: {exc}"
        return receipt
    receipt["status_code"] = response.status_code
    receipt["ok"] = response.is_success and response.json().get("accepted") == 1
    if not receipt["ok"]:
        receipt["error"] = response.text[:500]
    return receipt
