"""Under overload the collector answers 503 with Retry-After instead of queueing without bound."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import Server


def test_too_many_waiting_requests_get_503_with_retry_after(tmp_path) -> None:
    server = Server(tmp_path, env={"KAWA__INGEST__MAX_PENDING_REQUESTS": "1"})
    server.start()
    try:
        line = json.dumps({"event_name": "load", "keys": {"user_id": "u"}, "page": "x" * 300})
        body = "\n".join([line] * 5000).encode()
        headers = {
            "Authorization": f"Bearer {server.keys['write_key']}",
            "Content-Type": "application/x-ndjson",
        }

        def send(_: int) -> httpx.Response:
            return httpx.post(server.url + "/v1/events", content=body, headers=headers, timeout=60)

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(send, range(48)))
        codes = [r.status_code for r in responses]
        busy = [r for r in responses if r.status_code == 503]
        assert set(codes) <= {200, 503}, codes
        assert busy, "no request was turned away"
        assert all(r.headers.get("retry-after") == "1" and "retry" in r.json()["error"] for r in busy)
        accepted = 5000 * codes.count(200)
        rows = server.wait_for(
            "SELECT count(*) FROM events WHERE event_name = 'load'", [[accepted]], timeout=60
        )
        assert rows == [[accepted]]  # what was acknowledged is all there, and nothing else
        metrics = httpx.get(server.url + "/metrics").text
        assert "kawa_ingest_overloaded_total" in metrics
        assert f'kawa_events_accepted_total{{project="{server.project}"}} {float(accepted)}' in metrics
    finally:
        server.stop()
