"""The lineage page: tables, models and pipelines as one graph; a clicked node shows its runs and docs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.catalog import CatalogError
from kawa.lineage import Dataset, LineageGraph, describe
from kawa.lineage.nodes import graph_json, runs_touching, table_docs
from kawa.pipelines import RunStore
from kawa.pipelines.service import CodeUnavailable, PipelineService
from kawa.ui.pages.pipelines import STATUS_COLORS
from kawa.ui.render import page
from kawa.ui.session import Viewer, viewer

router = APIRouter()

RECENT_RUNS = 10
# How each kind of node looks: fill colour and Cytoscape shape.
LOOKS = {
    "table": ("#ddf4ff", "barrel"),
    "model": ("#fff1e5", "diamond"),
    "pipeline": ("#e7f0ff", "round-rectangle"),
}


def lineage_elements(data: dict[str, Any], selected: str | None = None) -> dict[str, Any]:
    """Cytoscape data for `graph_json`: pipelines coloured by their latest run, sources as roots."""
    elements: list[dict[str, Any]] = []
    for node in data["nodes"]:
        color, shape = LOOKS[node["kind"]]
        item: dict[str, Any] = {
            "id": node["id"],
            "label": node["name"],
            "color": color,
            "shape": shape,
            "kind": node["kind"],
            "details": "/lineage/node?id=" + quote(node["id"]),
        }
        if node["kind"] == "pipeline" and node.get("latest_status") in STATUS_COLORS:
            item["border"] = STATUS_COLORS[node["latest_status"]][1]
        elements.append({"data": item})
    for e in data["edges"]:
        edge_id = f"{e['source']}->{e['target']}"
        elements.append({"data": {"id": edge_id, "source": e["source"], "target": e["target"]}})
    written = {e["target"] for e in data["edges"]}
    roots = [n["id"] for n in data["nodes"] if n["id"] not in written]
    return {"elements": elements, "roots": roots, "direction": "LR", "selected": selected}


@router.get("/lineage", response_class=HTMLResponse)
async def lineage(
    request: Request, who: Annotated[Viewer, Depends(viewer)], node: str | None = None
) -> HTMLResponse:
    data = await run_in_threadpool(_graph, request, who)
    graph = lineage_elements(data, selected=node)
    return page(request, "lineage.html", who, graph=graph, counts=_counts(data), selected=node)


@router.get("/lineage/node", response_class=HTMLResponse)
async def lineage_node(
    request: Request, node_id: Annotated[str, Query(alias="id")], who: Annotated[Viewer, Depends(viewer)]
) -> HTMLResponse:
    """The side panel for one node (`table:NAME`, `model:NAME` or `pipeline:NAME`): its runs and docs."""
    data = await run_in_threadpool(_node, request, who, node_id)
    return page(request, "lineage_node.html", who, **data)


def _graph(request: Request, who: Viewer) -> dict[str, Any]:
    return graph_json(LineageGraph.load(request.app.state.runtime.metadata, who.project))


def _counts(data: dict[str, Any]) -> dict[str, int]:
    counts = {"table": 0, "model": 0, "pipeline": 0}
    for n in data["nodes"]:
        counts[n["kind"]] += 1
    return counts


def _node(request: Request, who: Viewer, node_id: str) -> dict[str, Any]:
    runtime = request.app.state.runtime
    kind, _, name = node_id.partition(":")
    if kind not in LOOKS or not name:
        raise HTTPException(
            404, f"{node_id!r} is not a node; nodes read table:NAME, model:NAME or pipeline:NAME"
        )
    graph = LineageGraph.load(runtime.metadata, who.project)
    out: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "docs": None,
        "about": None,
        "info": None,
        "model": None,
    }
    if kind == "pipeline":
        node = graph.pipelines.get(name)
        if node is None:
            raise HTTPException(404, f"no run of pipeline {name!r} has recorded lineage in this project")
        try:
            out["info"] = PipelineService.attached(request.app).describe(who.project, name)
        except (CodeUnavailable, LookupError):
            out["info"] = None  # gone from the code: its recorded runs still show
        out["reads"] = sorted(str(d) for d in node.reads)
        out["writes"] = sorted(str(d) for d in node.writes)
        records = RunStore(runtime.metadata).list(who.project, pipeline=name, limit=RECENT_RUNS)
        out["runs"] = [
            {"run_id": r.run_id, "pipeline": r.pipeline, "status": r.status, "started_at": r.started_at}
            for r in records
        ]
        return out
    dataset = Dataset(kind, name)
    if dataset not in graph.datasets():
        raise HTTPException(404, f"no run of project {who.project!r} has read or written {kind} {name!r}")
    out["about"] = describe(graph, dataset)
    out["runs"] = [
        dataclasses.asdict(r) for r in runs_touching(runtime.metadata, who.project, dataset, RECENT_RUNS)
    ]
    if kind == "table":
        try:
            out["docs"] = table_docs(Path(runtime.config.root), name)
        except CatalogError as exc:
            out["docs_error"] = str(exc)
    else:
        found = [m for m in request.app.state.registry.list_models(who.project) if m.name == name]
        out["model"] = found[0] if found else None
    return out
