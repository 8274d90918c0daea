"""The pieces of observability on their own: refusal categories, store error counts, log lines."""

from __future__ import annotations

import doctest
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from kawa.config import Config, ServerConfig
from kawa.events import metrics as event_metrics
from kawa.events.validate import decode_batch
from kawa.observe import logs, middleware
from kawa.observe.metrics import multiprocess_dir, reset_multiprocess_dir
from kawa.observe.process import problem
from kawa.serve.local import free_port
from kawa.stores.metadata import open_metadata
from kawa.stores.online import open_online_store


@pytest.mark.parametrize("module", [event_metrics, logs, middleware])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module, raise_on_error=False).failed == 0  # type: ignore[arg-type]


def test_every_refusal_the_validator_gives_falls_in_a_fixed_category() -> None:
    lines = {
        "invalid_json": '{"event_name": "view", "keys": ',
        "too_deep": '{"event_name": "view", "keys": {"user_id": "u"}, "x": ' + "[" * 40 + "]" * 40 + "}",
        "too_large": json.dumps({"event_name": "view", "keys": {"user_id": "u"}, "page": "x" * 40_000}),
        "missing_field": json.dumps({"event_name": "view", "keys": {}}),
        "bad_time": json.dumps(
            {"event_name": "view", "keys": {"user_id": "u"}, "sync_date": "1900-01-01T00:00Z"}
        ),
        "invalid": json.dumps({"event_name": "view", "keys": {"user_id": "u"}, "price": "cheap"}),
    }
    body = "\n".join(lines.values()).encode()
    batch = decode_batch(body, ndjson=True, project="p", received_at=1_700_000_000_000_000, max_depth=32,
                         max_event_bytes=32_768)  # fmt: skip
    assert [event_metrics.reason_category(r.reason) for r in batch.rejected] == list(lines)
    no_name = json.dumps({"keys": {"user_id": "u"}})
    batch = decode_batch(no_name.encode(), ndjson=True, project="p", received_at=1_700_000_000_000_000,
                         max_depth=32, max_event_bytes=32_768)  # fmt: skip
    assert event_metrics.reason_category(batch.rejected[0].reason) == "missing_field"
    assert set(event_metrics.REASONS) == {*lines, "write_key"}


def errors(store: str) -> float:
    return REGISTRY.get_sample_value("kawa_store_errors_total", {"store": store}) or 0.0


def test_a_store_call_that_fails_is_counted_for_its_store(tmp_path: Path) -> None:
    before = errors("online"), errors("metadata")
    with pytest.raises(Exception, match="cannot reach the Redis of the online store"):
        open_online_store(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    assert errors("online") == before[0] + 1
    with pytest.raises(Exception, match=r"Connection refused|connection failed"):
        open_metadata(f"postgresql://kawa:kawa@127.0.0.1:{free_port()}/kawa", tmp_path)
    assert errors("metadata") > before[1]


@contextmanager
def captured(log_format: str) -> Iterator[io.StringIO]:
    """What kawa's logging writes in `log_format` while the block runs (the root logger is restored)."""
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure(log_format, stream=out)
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_json_lines_carry_the_request_id_and_the_exception() -> None:
    with captured("json") as out:
        token = logs.request_id.set("rid-7")
        try:
            logging.getLogger("kawa.test").warning("two\nlines")
            try:
                raise ValueError("boom")
            except ValueError:
                logging.getLogger("kawa.test").exception("failed")
        finally:
            logs.request_id.reset(token)
        logging.getLogger("kawa.test").info("outside")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["message"], first["request_id"], first["level"]) == ("two\nlines", "rid-7", "WARNING")
    assert second["request_id"] == "rid-7" and "ValueError: boom" in second["exception"]
    assert "request_id" not in third and third["logger"] == "kawa.test"


def test_unknown_log_format_or_tracing_mode_stops_kawa_serve_with_what_to_use() -> None:
    assert problem(Config()) is None
    bad_format = problem(Config(server=ServerConfig(log_format="xml")))
    assert bad_format is not None and "use 'text' or 'json'" in bad_format
    bad_tracing = problem(Config(server=ServerConfig(tracing="zipkin")))
    assert bad_tracing is not None and "off, otlp, console" in bad_tracing


def test_a_new_serve_gets_empty_metric_files_and_leaves_a_running_ones_alone(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = multiprocess_dir(tmp_path, os.getpid())
    dead = multiprocess_dir(tmp_path, gone.pid)
    for folder in (live, dead):
        folder.mkdir(parents=True)
        (folder / "counter_1.db").write_bytes(b"x")
    mine = reset_multiprocess_dir(multiprocess_dir(tmp_path, 999_999_999))
    assert mine.is_dir() and not any(mine.iterdir())
    assert (live / "counter_1.db").exists() and not dead.exists()


def test_text_lines_end_with_the_request_id_inside_a_request() -> None:
    with captured("text") as out:
        token = logs.request_id.set("rid-8")
        logging.getLogger("kawa.test").info("inside")
        logs.request_id.reset(token)
        logging.getLogger("kawa.test").info("outside")
    assert out.getvalue().splitlines() == [
        "INFO kawa.test: inside [request rid-8]",
        "INFO kawa.test: outside",
    ]
