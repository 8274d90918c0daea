"""Fixtures for segment tests: a project over a small warehouse table, and a real webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kawa.config import Config
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

# Cart abandonment over the `shop_events` table: a cart add at least 24 hours before the run's logical
# date with no purchase by the same user after it.
CART_SQL = """
SELECT c.user_id, arg_max(c.item_id, c.at) AS item_id, max(c.at) AS carted_at
FROM shop_events c
WHERE c.event_name = 'cart_add' AND c.at <= $logical_date - INTERVAL 24 HOURS
  AND NOT EXISTS (
    SELECT 1 FROM shop_events p
    WHERE p.event_name = 'purchase' AND p.user_id = c.user_id AND p.at >= c.at AND p.at <= $logical_date
  )
GROUP BY c.user_id
ORDER BY c.user_id
"""


class Receiver:
    """An HTTP server on 127.0.0.1 keeping every POST (headers and JSON body); answers `statuses` first."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.statuses: list[int] = []  # one per request while there are any, then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(raw)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                payload = b'{"ok": true}'
                self.send_response(status)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push/s3cret"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def taken(self) -> dict[str, dict[str, Any]]:
        """The bodies a receiver deduplicating by Idempotency-Key keeps, by key (answered 2xx only)."""
        return {h["idempotency-key"]: b for h, b in self.posts if h.get("idempotency-key")}

    def members(self) -> list[str]:
        """Every member id of every distinct batch (by Idempotency-Key)."""
        return [m["user_id"] for body in self.taken().values() for m in body["members"]]

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Config(project="shop", root=str(tmp_path)))
    try:
        yield rt
    finally:
        rt.close()


def load_events(runtime: Runtime, rows: list[tuple[str, str, str | None, timedelta]]) -> None:
    """Replace `shop_events` with (user_id, event_name, item_id, age before NOW) rows."""
    table = pa.table(
        {
            "user_id": [r[0] for r in rows],
            "event_name": [r[1] for r in rows],
            "item_id": [r[2] for r in rows],
            "at": pa.array([NOW - r[3] for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )
    write_table(runtime.warehouse(), "shop_events", table)


def write_code(runtime: Runtime, code: str) -> None:
    """The project's pipelines.py (where its segments are declared)."""
    (Path(runtime.config.root) / "pipelines.py").write_text(code)
