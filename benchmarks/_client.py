"""A lean HTTP/1.1 keep-alive client on asyncio protocols, for load generation on a 2-core machine.

Why not httpx or aiohttp: the load generator shares the two cores with the server it measures, so every
microsecond it spends per request is taken from kawa. httpx parses HTTP in pure Python (h11) and costs
a few hundred microseconds per request; aiohttp is lighter but is one more dependency. This client
writes a prepared request with one `transport.write` and parses the response with two `find`s on a
bytearray, about 20-40 microseconds per request under uvloop. It understands exactly what kawa's server
(uvicorn + httptools) answers: a status line, headers and a Content-Length body.
"""

from __future__ import annotations

import asyncio
import re

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class ServerClosed(ConnectionError):
    """The server closed the connection before it answered."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; `request` sends a prepared request and waits for its response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body_at = -1
        self._end = -1
        self._status = 0

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is no subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None:
            return
        if self._end < 0:
            head_end = self._buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self._buf[:head_end])
            self._status = int(head[9:12])
            match = _CONTENT_LENGTH.search(head)
            self._body_at = head_end + 4
            self._end = self._body_at + (int(match.group(1)) if match else 0)
        if len(self._buf) >= self._end:
            body = bytes(self._buf[self._body_at : self._end])
            del self._buf[: self._end]
            waiter, self._waiter = self._waiter, None
            self._end = -1
            if not waiter.done():
                waiter.set_result((self._status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ServerClosed(f"the server closed the connection: {exc}"))
        self._waiter = None
        self.transport = None

    async def request(self, data: bytes | list[bytes]) -> tuple[int, bytes]:
        """Send one prepared request (bytes, or pieces written together); returns (status, body)."""
        if self.transport is None:
            raise ServerClosed("the connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        if isinstance(data, list):
            self.transport.writelines(data)
        else:
            self.transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def request_head(method: str, path: str, length: int, headers: dict[str, str]) -> bytes:
    """The request line and headers of a keep-alive request with a body of `length` bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
