"""Hostile requests against a real `kawa serve`: each gets a clean 4xx JSON error, good events beside bad
ones are kept, the server keeps serving others meanwhile, and its API process's memory stays bounded.

Memory is the API process's peak resident size (VmHWM in /proc) against its size before the attacks.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.hardening.conftest import IDLE_S

pytestmark = pytest.mark.slow

LIMIT = 5_000_000  # ingest.max_body_bytes (the default)
# How much the API process's peak memory may grow over the whole module: a few bodies at the limit
# and what parsing them costs, never the size an attacker asked for (a gigabyte, 100,000 levels).
MEMORY_MARGIN = 150 * 1024 * 1024
GOOD = {"event_name": "good", "keys": {"user_id": "u1"}}
DEEP = 100_000


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        found: dict[str, object] = json.loads(self.body)
        return found


@pytest.fixture(scope="module")
def hostile(served: Server) -> Server:
    return served


@pytest.fixture(scope="module")
def api_pid(hostile: Server) -> int:
    """The API process (the one that answers), warmed up by an ordinary batch."""
    with hostile.client() as client:
        assert client.post("/v1/events", json=[GOOD] * 100).status_code == 200
        pid = client.get("/healthz").json()["pid"]
    assert isinstance(pid, int)
    return pid


@pytest.fixture(scope="module")
def baseline(api_pid: int) -> int:
    return memory(api_pid, "VmRSS")


def memory(pid: int, field: str) -> int:
    """A /proc/PID/status size field, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def exchange(
    server: Server, path: str, headers: dict[str, str], body: Iterable[bytes], pause: float = 0.0
) -> Answer:
    """One HTTP/1.1 request over a raw socket: the body is sent as given (lies and dribbles included),
    while the answer is read at the same time, as a server may answer before the body is complete."""
    sock = socket.create_connection(("127.0.0.1", hostile_port(server)), timeout=30)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

    def send() -> None:
        try:
            for chunk in body:
                sock.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except OSError:  # the server answered and closed: the rest is not wanted
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if _complete(data):
                break
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    head_text, _, rest = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1"), f"no HTTP answer: {data[:200]!r}"
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, rest)


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def hostile_port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def auth(server: Server, role: str = "write") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys[role + '_key']}"}


def post(server: Server, path: str, body: bytes, headers: dict[str, str], role: str = "write") -> Answer:
    sent = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **auth(server, role),
        **headers,
    }
    return exchange(server, path, sent, [body[i : i + 65536] for i in range(0, len(body), 65536)])


def clean_4xx(answer: Answer, *codes: int) -> str:
    """The error message of a 4xx JSON answer with one of `codes`."""
    assert answer.status in codes, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    found = answer.json()
    # A batch whose every event was refused answers 400 with each event's reason instead.
    message = found.get("error") or (found.get("errors") and str(found["errors"]))
    assert isinstance(message, str) and message, answer.body[:300]
    return message


def bomb(size: int, wbits: int) -> bytes:
    """`size` bytes of spaces, compressed (gzip: wbits 31, zlib deflate: 15)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b" " * (1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return bomb(1 << 30, 31)  # a gigabyte, about a megabyte compressed


@pytest.mark.parametrize("path", ["/v1/events", "/v1/batch", "/v1/models/m/predict"])
def test_a_gzip_bomb_stops_at_the_limit(hostile: Server, baseline: int, gzip_bomb: bytes, path: str) -> None:
    role = "read" if "predict" in path else "write"
    answer = post(hostile, path, gzip_bomb, {"Content-Encoding": "gzip"}, role=role)
    if path == "/v1/batch":  # Segment's libraries send the key as the Basic user name
        key = base64.b64encode(f"{hostile.keys['write_key']}:".encode()).decode()
        answer = post(hostile, path, gzip_bomb, {"Content-Encoding": "gzip", "Authorization": f"Basic {key}"})
    assert "over 5000000 bytes" in clean_4xx(answer, 413)


def test_a_deflate_bomb_stops_at_the_limit_and_unknown_encodings_are_named(
    hostile: Server, baseline: int
) -> None:
    answer = post(hostile, "/v1/events", bomb(256 << 20, 15), {"Content-Encoding": "deflate"})
    assert "over 5000000 bytes" in clean_4xx(answer, 413)
    answer = post(hostile, "/v1/events", b"\x1b\x00\x00\x00", {"Content-Encoding": "br"})
    assert "'br' is not supported" in clean_4xx(answer, 400)
    answer = post(hostile, "/v1/events", b"not gzip at all", {"Content-Encoding": "gzip"})
    assert "not valid gzip" in clean_4xx(answer, 400)


def test_a_gzip_body_of_several_members_keeps_every_member(hostile: Server, baseline: int) -> None:
    lines = [json.dumps({**GOOD, "event_id": f"m{i}"}).encode() + b"\n" for i in range(2)]
    body = gzip.compress(lines[0]) + gzip.compress(lines[1])
    answer = post(
        hostile, "/v1/events", body, {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"}
    )
    assert (answer.status, answer.json()["accepted"]) == (200, 2), answer.body


def nested(levels: int, kind: str) -> bytes:
    return b"[" * levels + b"]" * levels if kind == "array" else b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_nesting_is_refused_before_parsing_goes_deep(hostile: Server, baseline: int, kind: str) -> None:
    deep = nested(DEEP, kind)
    assert "deeper than" in clean_4xx(post(hostile, "/v1/events", deep, {}), 400)
    assert "deeper than" in clean_4xx(post(hostile, "/v1/models/m/predict", deep, {}, role="read"), 400)
    clean_4xx(post(hostile, "/v1/sql", deep, {}, role="admin"), 400, 422)
    # Inside an event's properties, next to a good event: the good one is kept, the deep one refused.
    bad = b'{"event_name": "deep", "keys": {"user_id": "u2"}, "properties": ' + deep + b"}"
    for body, kind_header in (
        (b"[" + json.dumps(GOOD).encode() + b"," + bad + b"]", "application/json"),
        (json.dumps(GOOD).encode() + b"\n" + bad + b"\n", "application/x-ndjson"),
    ):
        answer = post(hostile, "/v1/events", body, {"Content-Type": kind_header})
        assert answer.status == 200, answer.body[:300]
        result = answer.json()
        assert (result["accepted"], result["rejected"]) == (1, 1)
        assert "deeper than" in str(result["errors"])


def test_a_deep_message_in_a_segment_batch_is_refused_alone(hostile: Server, baseline: int) -> None:
    key = base64.b64encode(f"{hostile.keys['write_key']}:".encode()).decode()
    good = json.dumps({"type": "track", "userId": "u3", "event": "fine"}).encode()
    deep = (
        b'{"type": "track", "userId": "u3", "event": "deep", "properties": ' + nested(DEEP, "object") + b"}"
    )
    for body in (
        b'{"batch": [' + good + b"," + deep + b"]}",
        b'{"sentAt": "2026-01-01T00:00:00Z", "batch": [' + deep + b"," + good + b"]}",
    ):
        answer = post(hostile, "/v1/batch", body, {"Authorization": f"Basic {key}"})
        assert answer.status == 200, answer.body[:300]
        assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)
        assert "nested deeper than 32 levels" in str(answer.json()["errors"])
    lone = post(hostile, "/v1/track", deep, {"Authorization": f"Basic {key}"})
    assert "deeper than" in clean_4xx(lone, 400)


def test_huge_bodies_are_refused_before_they_are_read(hostile: Server, baseline: int) -> None:
    huge = b'{"event_name": "x", "keys": {"user_id": "u"}, "page": "' + b"a" * 50_000_000 + b'"}'
    assert "limit is 5000000" in clean_4xx(post(hostile, "/v1/events", huge, {}), 413)
    # Without a Content-Length (chunked), reading stops at the limit.
    chunked = exchange(
        hostile,
        "/v1/events",
        {"Transfer-Encoding": "chunked", "Content-Type": "application/json", **auth(hostile)},
        _chunked(huge),
    )
    assert "over 5000000 bytes" in clean_4xx(chunked, 413)
    # Routes whose body FastAPI parses are bounded the same way.
    sql = b'{"sql": "SELECT \'' + b"a" * 50_000_000 + b"'\"}"
    assert clean_4xx(post(hostile, "/v1/sql", sql, {}, role="admin"), 413)


def _chunked(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 1 << 20):
        part = body[i : i + (1 << 20)]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_a_huge_event_or_many_keys_is_refused_alone(hostile: Server, baseline: int) -> None:
    big = {"event_name": "big", "keys": {"user_id": "u"}, "page": "a" * 4_000_000}
    many = {
        "event_name": "many",
        "keys": {"user_id": "u"},
        "properties": {f"k{i}": i for i in range(200_000)},
    }
    for bad in (big, many):
        answer = post(hostile, "/v1/events", json.dumps([GOOD, bad]).encode(), {})
        assert answer.status == 200, answer.body[:300]
        assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)
        assert "the limit is 32768" in str(answer.json()["errors"])


def test_invalid_utf8_in_body_header_and_key(hostile: Server, baseline: int) -> None:
    bad_line = b'{"event_name": "caf\xe9", "keys": {"user_id": "u"}}'
    assert "not valid JSON" in clean_4xx(post(hostile, "/v1/events", bad_line, {}), 400)
    ndjson = json.dumps(GOOD).encode() + b"\n" + bad_line + b"\n"
    answer = post(hostile, "/v1/events", ndjson, {"Content-Type": "application/x-ndjson"})
    assert (answer.status, answer.json()["accepted"], answer.json()["rejected"]) == (200, 1, 1)
    good = json.dumps(GOOD).encode()
    for key_header in (
        {"Authorization": "Bearer \xff\xfekey"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
        {"Authorization": "Basic !!not-base64"},
        {"Authorization": "Basic caf\xe9"},  # not ASCII (headers arrive as Latin-1)
    ):
        for path in ("/v1/events", "/v1/track"):
            body = good if path == "/v1/events" else b'{"userId": "u", "event": "e"}'
            clean_4xx(post(hostile, path, body, key_header), 400, 401)
    answer = post(hostile, "/v1/events", good, {"X-Note": "caf\xe9 \xff"})
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    ("path", "content_type", "body", "role"),
    [
        ("/v1/events", "application/xml", b"<event name='x'/>", "write"),
        ("/v1/events", "multipart/form-data; boundary=x", b"--x\r\n\r\nhello\r\n--x--", "write"),
        ("/v1/events", "application/json", b"\x00\x00\x00", "write"),
        ("/v1/events", "application/json", b'"just a string"', "write"),
        ("/v1/events", "application/json", b"", "write"),
        ("/v1/sql", "text/plain", b'{"sql": "SELECT 1"}', "admin"),
        ("/v1/sql", "application/json", b'{"sql": "SELECT \x00"}', "admin"),
        ("/v1/models/m/predict", "application/x-www-form-urlencoded", b"age=3", "read"),
        ("/v1/batch", "application/json", b'{"batch": 7}', "write"),
    ],
)
def test_wrong_content_types_and_nul_bytes(
    hostile: Server, baseline: int, path: str, content_type: str, body: bytes, role: str
) -> None:
    headers = {"Content-Type": content_type}
    if path == "/v1/batch":
        key = base64.b64encode(f"{hostile.keys['write_key']}:".encode()).decode()
        headers["Authorization"] = f"Basic {key}"
    clean_4xx(post(hostile, path, body, headers, role=role), 400, 404, 415, 422)


def test_an_escaped_nul_is_data_not_an_attack(hostile: Server, baseline: int) -> None:
    event = {"event_name": "nul\u0000name", "keys": {"user_id": "u\u0000"}, "page": "\u0000"}
    answer = post(hostile, "/v1/events", json.dumps(event).encode(), {})
    assert (answer.status, answer.json()["accepted"]) == (200, 1), answer.body


def test_a_content_length_that_lies(hostile: Server, baseline: int) -> None:
    good = json.dumps(GOOD).encode()
    # Longer than sent: the body stalls, and is cut off after the idle timeout.
    started = time.monotonic()
    longer = exchange(
        hostile,
        "/v1/events",
        {"Content-Length": "1000", "Content-Type": "application/json", **auth(hostile)},
        [good],
    )
    assert f"no bytes for {IDLE_S:g} s" in clean_4xx(longer, 408)
    assert time.monotonic() - started < 30
    # Shorter than sent: the declared part is the body (cut JSON), the rest is not a request.
    shorter = exchange(
        hostile,
        "/v1/events",
        {"Content-Length": "10", "Content-Type": "application/json", **auth(hostile)},
        [good],
    )
    assert "not valid JSON" in clean_4xx(shorter, 400)


def test_many_tiny_events(hostile: Server, baseline: int) -> None:
    tiny = b'{"event_name":"t","keys":{"user_id":"u"}}\n'
    answer = post(hostile, "/v1/events", tiny * 10_001, {"Content-Type": "application/x-ndjson"})
    assert "the limit is 10000" in clean_4xx(answer, 413)
    mixed = (tiny * 9 + b'{"event_name":""}\n') * 1000
    answer = post(hostile, "/v1/events", mixed, {"Content-Type": "application/x-ndjson"})
    assert (answer.status, answer.json()["accepted"], answer.json()["rejected"]) == (200, 9000, 1000)


@pytest.mark.parametrize(
    ("path", "content_type", "role"),
    [
        ("/v1/events", "application/json", "write"),
        ("/v1/sql", "application/json", "admin"),
        ("/login", "application/x-www-form-urlencoded", "write"),
    ],
)
def test_a_slow_body_is_cut_off_while_others_are_served(
    hostile: Server, baseline: int, path: str, content_type: str, role: str
) -> None:
    headers = {"Content-Length": "100000", "Content-Type": content_type, **auth(hostile, role)}
    if path == "/login":
        headers["Accept"] = "application/json"
    done: list[Answer] = []
    slow = threading.Thread(
        target=lambda: done.append(
            exchange(hostile, path, headers, (b" " for _ in range(100_000)), pause=0.2)
        )
    )
    started = time.monotonic()
    slow.start()
    served = 0
    with hostile.client() as client:
        while slow.is_alive() and time.monotonic() - started < 60:
            assert client.post("/v1/events", json=GOOD).status_code == 200
            served += 1
            time.sleep(0.1)
    slow.join(30)
    assert done, "the slow body was never cut off"
    assert done[0].status == 408, done[0].body[:300]
    assert served >= 1, "no other request was served while the slow body trickled in"


def test_memory_stayed_bounded(hostile: Server, api_pid: int, baseline: int) -> None:
    """Last in this module: the API process's peak memory over every attack above."""
    with hostile.client() as client:
        assert client.get("/healthz").json()["pid"] == api_pid, "the API process restarted"
    peak = memory(api_pid, "VmHWM")
    print(f"API process memory: {baseline >> 20} MiB before the attacks, peak {peak >> 20} MiB")
    assert peak - baseline < MEMORY_MARGIN, f"peak {peak >> 20} MiB from {baseline >> 20} MiB"
