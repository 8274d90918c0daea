"""Sending a segment's batches to a webhook: one POST per batch, retried with backoff on 5xx and timeouts.

The body of a batch is the same on every try and every resend (its members are read back from the
delivery log), and its `id` is also the `Idempotency-Key` header, as kawa's trigger webhooks do: a
receiver that already took a batch (kawa could not record the answer before a crash) drops it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from kawa.segments.destinations import Job, Report, Webhook

if TYPE_CHECKING:
    from kawa.segments.store import Batch

log = logging.getLogger("kawa.segments")

# Answers worth another try; any other 4xx means the receiver refuses this batch as it is.
RETRY_STATUS = frozenset({408, 425, 429})
MAX_BACKOFF_S = 60.0


def body(job: Job, batch: Batch) -> dict[str, Any]:
    """The JSON body of one batch: its id, the segment, the day and the members with their columns."""
    members = [{job.entity: member, **json.loads(attributes)} for member, attributes in batch.members]
    return {
        "id": batch.batch_id,
        "project": job.project,
        "segment": job.segment,
        "day": job.day.isoformat(),
        "entity": job.entity,
        "count": len(members),
        "members": members,
    }


def post_batches(hook: Webhook, job: Job, *, sleep: Callable[[float], None] = time.sleep) -> Report:
    """POST each batch of `job` and settle it in the log; stops at the first batch that fails for good.

    Batches after a failed one stay claimed by the run, so its retry (or the next run of the day)
    sends them.
    """
    report = Report()
    with httpx.Client(timeout=hook.timeout_s) as client:
        for batch in job.batches:
            ok, attempts, error = _send(client, hook, job, batch, sleep)
            job.log.settle(
                job.project, batch.batch_id, run_id=job.run_id, delivered=ok, attempts=attempts, error=error
            )
            if not ok:
                report.failed = sum(len(b.members) for b in job.batches) - report.delivered
                report.error = error
                return report
            report.delivered += len(batch.members)
            report.batches += 1
    return report


def _send(
    client: httpx.Client, hook: Webhook, job: Job, batch: Batch, sleep: Callable[[float], None]
) -> tuple[bool, int, str | None]:
    """(delivered, attempts made, last error) for one batch."""
    content = json.dumps(body(job, batch), separators=(",", ":")).encode()
    headers = {**hook.headers, "Content-Type": "application/json", "Idempotency-Key": batch.batch_id}
    why = ""
    for attempt in range(1, hook.attempts + 1):
        try:
            response = client.post(hook.url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            why, again = f"POST {hook.describe()}: {type(exc).__name__}: {exc}", True
        else:
            if response.status_code < 300:
                return True, attempt, None
            code = response.status_code
            why = f"POST {hook.describe()} answered {code}: {response.text[:200]}"
            again = code >= 500 or code in RETRY_STATUS
        if not again:
            return False, attempt, why
        if attempt < hook.attempts:
            wait = min(hook.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            log.warning(
                "segment %s: batch %s (%d members) not delivered (%s); try %d of %d in %.1fs",
                job.segment,
                batch.batch_id,
                len(batch.members),
                why,
                attempt + 1,
                hook.attempts,
                wait,
            )
            sleep(wait)
    return False, hook.attempts, f"{why} (after {hook.attempts} tries)"
