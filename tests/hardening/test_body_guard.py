"""The body guard on its own: an ASGI app behind it, fed by a scripted client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from kawa.api.ingest import BodyGuard


def run(chunks: list[tuple[float, bytes]], *, app_delay: float = 0.0, length: int | None = None) -> bytes:
    """The body the app read: `chunks` arrive as (seconds after the previous one, bytes); the last ends it."""
    read: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(app_delay)
        while True:
            message = await receive()
            read.append(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def main() -> None:
        # As uvicorn does: bytes that arrived wait in a buffer, and `receive` hands over all of them.
        buffer = bytearray()
        ended = False
        arrived = asyncio.Event()

        async def client() -> None:
            nonlocal ended
            for i, (pause, data) in enumerate(chunks):
                await asyncio.sleep(pause)
                buffer.extend(data)
                ended = i == len(chunks) - 1
                arrived.set()

        async def receive() -> dict[str, Any]:
            await arrived.wait()
            arrived.clear()
            data = bytes(buffer)
            buffer.clear()
            return {"type": "http.request", "body": data, "more_body": not ended}

        headers = [] if length is None else [(b"content-length", str(length).encode())]
        sender = asyncio.create_task(client())
        guard = BodyGuard(app, limit=100, idle_s=0.3, total_s=0.6)
        try:
            await guard({"type": "http", "headers": headers}, receive, lambda message: None)
        finally:
            sender.cancel()

    asyncio.run(main())
    return b"".join(read)


def refused(status: int, chunks: list[tuple[float, bytes]], **kwargs: Any) -> str:
    with pytest.raises(HTTPException) as info:
        run(chunks, **kwargs)
    assert info.value.status_code == status
    return str(info.value.detail)


def test_a_body_that_arrives_in_time_passes_whole() -> None:
    assert run([(0.0, b"ab"), (0.1, b"cd"), (0.1, b"ef")]) == b"abcdef"


def test_a_body_read_late_passes_when_it_had_arrived_whole() -> None:
    assert run([(0.0, b"ab"), (0.0, b"cd")], app_delay=0.8) == b"abcd"


def test_a_stalled_body_is_cut_off() -> None:
    assert "no bytes for 0.3 s" in refused(408, [(0.0, b"ab"), (5.0, b"cd")])


def test_a_trickling_body_is_cut_off_at_the_deadline() -> None:
    assert "not whole within 0.6 s" in refused(408, [(0.1, b"x")] * 20)


def test_a_body_past_the_limit_is_refused_as_it_grows_or_when_declared() -> None:
    assert "over 100 bytes" in refused(413, [(0.0, b"x" * 60), (0.0, b"x" * 60)])
    assert "the body is 101 bytes" in refused(413, [(0.0, b"x")], length=101)
