"""What goes wrong in streaming feature definitions and computations."""

from __future__ import annotations

from kawa.features.errors import FeatureError


class StreamError(FeatureError):
    """A stream view, filter or feature request is invalid; the message says what to change."""
