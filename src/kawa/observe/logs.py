"""Log lines as text or JSON, each carrying the id of the HTTP request it was written for.

`server.log_format: json` (or `KAWA__SERVER__LOG_FORMAT=json`) writes one JSON object per line:
`{"time", "level", "logger", "message", "request_id"?, "exception"?}`; `kawa serve` adds `"part"`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

# The id of the request being served; the request-id middleware sets it, each log record reads it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("kawa_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record as `request_id` (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, with ` [request <id>]` inside a request."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} [request {rid}]" if rid else text


class JsonFormatter(logging.Formatter):
    """One JSON object per record (a multi-line message or traceback stays on one line)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _rfc3339(created: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{stamp}.{int(created % 1 * 1000):03d}Z"


def check_format(log_format: str) -> str:
    """`log_format` if kawa knows it; otherwise a ValueError saying what to use."""
    if log_format not in FORMATS:
        raise ValueError(
            f"server.log_format {log_format!r} is not known; use 'text' or 'json' "
            "(KAWA__SERVER__LOG_FORMAT=json for one JSON object per line)"
        )
    return log_format


def configure(log_format: str = "text", *, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stdout) in `log_format`, with request ids."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if check_format(log_format) == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def as_json_line(part: str, line: str) -> str:
    """`line` of `part` as one JSON log line: its own object with `part` added, or the text as message.

    >>> as_json_line("api", '{"level": "INFO", "message": "hi"}')
    '{"part": "api", "level": "INFO", "message": "hi"}'
    >>> as_json_line("kawa", "ready at http://127.0.0.1:8642")
    '{"part": "kawa", "message": "ready at http://127.0.0.1:8642"}'
    """
    if line.startswith("{"):
        try:
            found = json.loads(line)
        except ValueError:
            found = None
        if isinstance(found, dict):
            return json.dumps({"part": part, **found}, ensure_ascii=False)
    return json.dumps({"part": part, "message": line}, ensure_ascii=False)
