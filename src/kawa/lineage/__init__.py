"""Lineage: which pipeline steps read and wrote which tables and models, and what depends on what."""

from __future__ import annotations

from kawa.lineage.store import Edge, LineageStore

__all__ = ["Edge", "LineageStore"]
