"""Browser tracking: the `kawa.js` script web pages load, and which origins may send each project's events."""

from __future__ import annotations

from kawa.tracking.origins import OriginPolicy, normalise_origin

__all__ = ["OriginPolicy", "normalise_origin"]
