"""EventsClient against a real HTTP server on 127.0.0.1 that answers from a script."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kawa.client import EventsClient, KawaClientError, SendResult


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """What the server answers, in order; once used up it accepts every event that has no "bad" field."""

    answers: list[tuple[int, dict[str, str], bytes] | str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    script: Script
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.script.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.script.answers:
            answer = self.script.answers.pop(0)
            if answer == "hang up":
                self.close_connection = True
                return
            assert not isinstance(answer, str)
            status, headers, payload = answer
        else:
            status, headers, payload = 200, {}, self._accept(body)
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _accept(self, body: bytes) -> bytes:
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        events = [json.loads(line) for line in body.splitlines()]
        errors = [
            {"index": i, "event_id": e.get("event_id"), "reason": "bad event"}
            for i, e in enumerate(events)
            if "bad" in e
        ]
        return json.dumps(
            {"accepted": len(events) - len(errors), "rejected": len(errors), "errors": errors}
        ).encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("Handler", (_Handler,), {"script": script})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _events(n: int, bad: Collection[int] = ()) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"e-{i}",
            "event_name": "view",
            "keys": {"visitor_id": "v_1"},
            **({"bad": 1} if i in bad else {}),
        }
        for i in range(n)
    ]


def test_503_with_retry_after_is_retried_with_the_identical_body(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append((503, {"Retry-After": "1"}, b'{"detail": "the event log is behind"}'))
    body = b'{"event_id":"e-1","event_name":"view","keys":{"visitor_id":"v_1"}}\n'
    started = time.monotonic()
    with EventsClient(url, "wk_test", retries=3) as client:
        answer = client.send_ndjson(body)
    assert time.monotonic() - started >= 0.95  # it waited as Retry-After asked
    assert answer == {"accepted": 1, "rejected": 0, "errors": []}
    assert [s.body for s in script.seen] == [body, body]
    first = script.seen[0]
    assert first.path == "/v1/events"
    assert first.headers["authorization"] == "Bearer wk_test"
    assert first.headers["content-type"] == "application/x-ndjson"
    assert "content-encoding" not in first.headers


def test_429_and_a_dropped_connection_are_retried(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers += [(429, {"Retry-After": "0"}, b"{}"), "hang up"]
    with EventsClient(url, "wk_test", retries=3, backoff=0.01) as client:
        result = client.send(_events(3))
    assert result == SendResult(accepted=3, rejected=0, errors=[], batches=1)
    assert len(script.seen) == 3 and len({s.body for s in script.seen}) == 1


def test_400_is_not_retried_and_the_error_carries_the_server_message(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append((400, {}, b'{"detail": "line 1 is not JSON; send one object per line"}'))
    with EventsClient(url, "wk_test", retries=5) as client, pytest.raises(KawaClientError) as caught:
        client.send_ndjson(b"not json\n")
    assert len(script.seen) == 1
    assert caught.value.status_code == 400
    assert "line 1 is not JSON; send one object per line" in str(caught.value)
    assert "not retried" in str(caught.value)


def test_401_says_to_check_the_write_key(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append((401, {"Content-Type": "text/plain"}, b"unknown key"))
    with EventsClient(url, "wk_wrong") as client, pytest.raises(KawaClientError, match="write key") as caught:
        client.send(_events(1))
    assert "unknown key" in str(caught.value) and len(script.seen) == 1


def test_retries_give_up_with_a_clear_error(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers += [(503, {"Retry-After": "0"}, b'{"detail": "busy"}')] * 3
    with EventsClient(url, "wk_test", retries=2) as client, pytest.raises(KawaClientError) as caught:
        client.send_ndjson(b"{}\n")
    assert len(script.seen) == 3
    assert caught.value.status_code == 503
    assert "busy" in str(caught.value) and "3 attempts" in str(caught.value)


def test_an_unreachable_server_fails_after_the_retries() -> None:
    client = EventsClient("http://127.0.0.1:9", "wk_test", retries=2, backoff=0.01)
    with client, pytest.raises(KawaClientError, match=r"3 attempts.*kawa serve"):
        client.send_ndjson(b"{}\n")


def test_send_batches_and_sums_answers_with_indexes_into_the_whole_send(server: tuple[str, Script]) -> None:
    url, script = server
    with EventsClient(url, "wk_test") as client:
        result = client.send(iter(_events(1200, bad={3, 742})), batch_size=500, gzip=True)
    assert [len(gzip.decompress(s.body).splitlines()) for s in script.seen] == [500, 500, 200]
    assert all(s.headers["content-encoding"] == "gzip" for s in script.seen)
    assert result.accepted == 1198 and result.rejected == 2 and result.batches == 3
    assert [(e["index"], e["event_id"]) for e in result.errors] == [(3, "e-3"), (742, "e-742")]


def test_gzip_retries_resend_identical_compressed_bytes(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers.append((503, {"Retry-After": "0"}, b"{}"))
    with EventsClient(url, "wk_test") as client:
        client.send_ndjson(b'{"event_name":"view"}\n' * 100, gzip=True)
    assert len(script.seen) == 2 and script.seen[0].body == script.seen[1].body
    assert gzip.decompress(script.seen[0].body) == b'{"event_name":"view"}\n' * 100
