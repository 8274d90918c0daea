"""The trigger worker's real parts in a temporary state folder: event log, collector, LMDB, registry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.config import IngestConfig
from kawa.events.collector import Collector
from kawa.models import Bundle, Registry
from kawa.stores.artifacts import open_artifacts
from kawa.stores.eventlog import EventLog, open_event_log
from kawa.stores.metadata import open_metadata
from kawa.stores.online import OnlineStore, open_online_store
from kawa.triggers import Trigger
from kawa.triggers.worker import TriggerWorker

PROJECT = "shop"


def buyer_bundle(flip: bool = False, strict: bool = False) -> Bundle:
    """A model of `price` (high price -> buys, or the reverse when flipped).

    `strict` adds a `media` category the model needs and refuses unknown values of (RowError).
    """
    prices = [float(p) for p in (20, 30, 40, 50, 60, 25, 35, 45, 55, 65)] * 10
    bought = [int((p > 42) != flip) for p in prices]
    columns: dict[str, list[Any]] = {"price": prices, "bought": bought}
    if strict:
        columns["media"] = ["Twitter", "TV", "Radio", "Twitter", "TV"] * 20
    unknown = "error" if strict else "missing"
    return Bundle.fit(pa.table(columns), label="bought", estimator=LogisticRegression(), unknown=unknown)


class Parts:
    """What a worker runs on, opened the way `kawa serve` opens them, plus a collector to send with."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writer_log = open_event_log("files", root, writer=True)
        self.collector = Collector(self.writer_log, IngestConfig())
        self.online: OnlineStore = open_online_store("lmdb://?sync=false", root)
        self.metadata = open_metadata("sqlite", root)
        self.artifacts = open_artifacts("local", root)
        self.registry = Registry(self.metadata, self.artifacts)
        self._opened: list[EventLog] = []
        self._sent = 0

    def register(self, bundle: Bundle, name: str = "buyer", promote: bool = True) -> int:
        version = self.registry.register(PROJECT, name, bundle)
        if promote:
            self.registry.promote(PROJECT, name, version)
        return version

    def send(self, events: Sequence[dict[str, Any]], project: str = PROJECT) -> None:
        """Ingest `events` through the collector, as one request."""
        body = "\n".join(json.dumps(e) for e in events).encode()
        result = self.collector.ingest(body, project=project, ndjson=True)
        assert result.rejected == 0, result.errors

    def worker(self, triggers: Sequence[Trigger], **options: Any) -> TriggerWorker:
        """A new worker (as after a restart): its own read-only log, the stores it resumes from."""
        log = open_event_log("files", self.root, writer=False)
        self._opened.append(log)
        return TriggerWorker(
            project=PROJECT, triggers=triggers, event_log=log, online=self.online, registry=self.registry,
            **options,
        )  # fmt: skip

    def close(self) -> None:
        for log in self._opened:
            log.close()
        self.registry.close()
        self.artifacts.close()
        self.metadata.close()
        self.online.close()
        self.writer_log.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    p = Parts(tmp_path)
    try:
        yield p
    finally:
        p.close()


def view(event_id: str, user: str, price: float, **more: Any) -> dict[str, Any]:
    return {"event_name": "view", "event_id": event_id, "keys": {"user_id": user}, "price": price, **more}


def drain(worker: TriggerWorker) -> None:
    """Run the worker until the log has nothing new for it, then store its offset."""
    while worker.step():
        pass
    worker.flush()


class Webhook:
    """A receiver at `url` that answers no call until `gate` is set, and keeps what it got.

    Any other path answers 422 at once (a refusal for good).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.waiting = 0
        self.gate = threading.Event()
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/hook":
                    self.send_response(422)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with received._lock:
                    received.waiting += 1
                received.gate.wait(60)
                with received._lock:
                    received.calls.append((self.headers["Idempotency-Key"], body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        # `shutdown` waits for `serve_forever` to say it stopped; on a loaded machine that wait was once
        # seen never to end, so it is bounded: the serving thread is a daemon either way.
        stopper = threading.Thread(target=self.server.shutdown, daemon=True)
        stopper.start()
        stopper.join(5)
        self.server.server_close()


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
