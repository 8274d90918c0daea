"""Lineage: which pipeline steps read and wrote which tables and models, and what depends on what.

Runs record it (see `RunContext`); `LineageGraph.load(metadata, project)` builds the graph from the
latest run of each step; `describe` and `impact` answer `kawa lineage NAME [--impact]` and
`GET /v1/lineage/{name}`.
"""

from __future__ import annotations

from kawa.lineage.graph import Dataset, LineageGraph, Link, PipelineNode, describe
from kawa.lineage.impact import Impact, impact
from kawa.lineage.store import Edge, LineageStore

__all__ = [
    "Dataset",
    "Edge",
    "Impact",
    "LineageGraph",
    "LineageStore",
    "Link",
    "PipelineNode",
    "describe",
    "impact",
]
