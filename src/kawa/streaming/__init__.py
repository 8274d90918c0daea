"""Streaming features: per-entity counts, sums, recency and sequences, the same online and offline."""

from __future__ import annotations

from kawa.streaming import stream
from kawa.streaming.engine import StreamEngine
from kawa.streaming.errors import StreamError
from kawa.streaming.fields import Field
from kawa.streaming.match import Match
from kawa.streaming.offline import event_points, stream_features_at
from kawa.streaming.spec import StreamFeature, parse_window
from kawa.streaming.view import StreamView

__all__ = [
    "Field",
    "Match",
    "StreamEngine",
    "StreamError",
    "StreamFeature",
    "StreamView",
    "event_points",
    "parse_window",
    "stream",
    "stream_features_at",
]
