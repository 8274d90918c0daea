"""What goes wrong in feature definitions and computations."""

from __future__ import annotations


class FeatureError(ValueError):
    """A feature view, label or training set request is invalid; the message says what to change."""
