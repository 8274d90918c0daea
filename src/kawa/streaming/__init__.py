"""Streaming features: per-entity counts, sums, recency and sequences, the same online and offline."""

from __future__ import annotations

from kawa.streaming import stream
from kawa.streaming.engine import StreamEngine
from kawa.streaming.errors import StreamError
from kawa.streaming.fields import Field
from kawa.streaming.match import Match
from kawa.streaming.spec import StreamFeature, parse_window
from kawa.streaming.view import StreamView

__all__ = [
    "Field",
    "Match",
    "StreamEngine",
    "StreamError",
    "StreamFeature",
    "StreamView",
    "parse_window",
    "stream",
]
