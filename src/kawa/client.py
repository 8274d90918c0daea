"""The Python client for a kawa server: send events to the collector.

Sending is safe to retry: a retried request carries the same bytes, so the same event_ids, and the
collector drops event_ids it has already kept. The client therefore retries whatever may be
transient (connection errors, timeouts, 429, 502, 503, 504), waiting as long as `Retry-After` asks,
and never retries any other 4xx, whose answer says what to fix.

>>> with EventsClient("http://127.0.0.1:8642", "wk_...") as client:  # doctest: +SKIP
...     client.send([{"event_name": "view", "keys": {"visitor_id": "v_1"}, "page": "https://shop.example/"}])
SendResult(accepted=1, rejected=0, errors=[], batches=1)
"""

from __future__ import annotations

import gzip as gzip_lib
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx
import msgspec

from kawa import __version__

EVENTS_PATH = "/v1/events"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures where the request may not have reached the server, or the server may have kept it anyway.
RETRY_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)

_encoder = msgspec.json.Encoder()


class KawaClientError(Exception):
    """kawa refused a request, or could not be reached in time; the message says what to do."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class SendResult(msgspec.Struct):
    """What the collector kept across all batches of one `send`.

    `errors` index events by their position in the whole `send`, not in their batch.
    """

    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)
    batches: int = 0


class EventsClient:
    """Sends events to a kawa server with a project's write key."""

    def __init__(
        self,
        base_url: str,
        write_key: str,
        *,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_wait: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {write_key}", "User-Agent": f"kawa-python/{__version__}"},
        )

    def send(
        self, events: Iterable[dict[str, Any]], *, batch_size: int = 500, gzip: bool = False
    ) -> SendResult:
        """Send events in NDJSON batches of `batch_size`; returns the sums of the server's answers."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1")
        result = SendResult()
        batch: list[dict[str, Any]] = []
        start = 0
        for event in events:
            batch.append(event)
            if len(batch) == batch_size:
                self._add(result, self.send_ndjson(_encoder.encode_lines(batch), gzip=gzip), start)
                start += len(batch)
                batch = []
        if batch:
            self._add(result, self.send_ndjson(_encoder.encode_lines(batch), gzip=gzip), start)
        return result

    def send_ndjson(self, body: bytes, gzip: bool = False) -> dict[str, Any]:
        """POST one NDJSON body (one event per line) to /v1/events; returns the server's JSON answer."""
        headers = {"Content-Type": "application/x-ndjson"}
        if gzip:
            # mtime=0: the compressed bytes depend only on the body, so every retry sends the same bytes.
            body = gzip_lib.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.post(EVENTS_PATH, content=body, headers=headers)
            except RETRY_ERRORS as exc:
                if last:
                    raise KawaClientError(
                        f"could not send events to {self.base_url}{EVENTS_PATH} in {attempts} attempts: "
                        f"{type(exc).__name__}: {exc}; check that `kawa serve` is running at that address"
                    ) from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.is_success:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            raise _refused(response, attempts if response.status_code in RETRY_STATUSES else attempt + 1)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before the next attempt: what the server asked for, else backoff with jitter."""
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self.max_wait)
        return min(self.backoff * 2**attempt, self.max_wait) * random.uniform(0.5, 1.0)

    @staticmethod
    def _add(result: SendResult, answer: dict[str, Any], start: int) -> None:
        result.accepted += int(answer.get("accepted", 0))
        result.rejected += int(answer.get("rejected", 0))
        for error in answer.get("errors", []):
            if isinstance(error.get("index"), int):
                error = {**error, "index": error["index"] + start}
            result.errors.append(error)
        result.batches += 1


def _retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _refused(response: httpx.Response, attempts: int) -> KawaClientError:
    """The error for an answer that retrying will not fix (or that stayed bad through every retry)."""
    status = response.status_code
    message = _server_message(response)
    what = f"kawa answered {status} to POST {EVENTS_PATH}: {message}"
    if status in RETRY_STATUSES:
        hint = f"still refused after {attempts} attempts; the server is overloaded, try again later"
    elif status in (401, 403):
        hint = "check the write key: it must be a current write key of the project"
    elif status == 413:
        hint = "send smaller batches"
    elif 400 <= status < 500:
        hint = "fix the request; it was not retried"
    else:
        hint = "the server failed; see its log"
    return KawaClientError(f"{what} ({hint})", status_code=status, body=response.text)


def _server_message(response: httpx.Response) -> str:
    """The reason the server gave: its JSON `detail`, `error` or `message`, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        for key in ("detail", "error", "message"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return msgspec.json.encode(data).decode()[:500]
