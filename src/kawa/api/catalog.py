"""Catalog and lineage routes for the UI: tables with docs and lineage, and one table's or model's lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from kawa.api.auth import read_access
from kawa.catalog import CatalogError, build_catalog
from kawa.lineage import Dataset, LineageGraph, describe, impact
from kawa.lineage.nodes import graph_json, runs_touching, table_docs

router = APIRouter(tags=["catalog"])


@router.get(
    "/v1/catalog",
    summary="Every table with its columns, docs (catalog/*.yaml), owners and lineage; what is undocumented",
)
def get_catalog(request: Request) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread; reading schemas and lineage is blocking work.
    key = read_access(request)
    runtime = request.app.state.runtime
    graph = LineageGraph.load(runtime.metadata, key.project)
    try:
        catalog = build_catalog(Path(runtime.config.root), runtime.warehouse(key.project), graph=graph)
    except CatalogError as exc:
        raise HTTPException(500, f"the project's catalog files cannot be read: {exc}") from None
    return catalog.to_json()


@router.get(
    "/v1/lineage/{name}",
    summary="Where a table or model comes from and what is made from it; impact=true adds what is stale",
    responses={404: {"description": "no run has read or written it"}, 409: {"description": "ambiguous"}},
)
def get_lineage(
    name: str, request: Request, with_impact: Annotated[bool, Query(alias="impact")] = False
) -> dict[str, Any]:
    key = read_access(request)
    runtime = request.app.state.runtime
    graph = LineageGraph.load(runtime.metadata, key.project)
    found = graph.find(name)
    if not found:
        raise HTTPException(404, f"no run of project {key.project!r} has read or written {name!r}")
    if len(found) > 1:
        raise HTTPException(
            409, f"{name!r} is both a table and a model; ask for table:{name} or model:{name}"
        )
    data = describe(graph, found[0])
    if with_impact:
        found_impact = impact(graph, found[0], lake_root=runtime.lake_root, project=key.project)
        data["impact"] = [i.to_json() for i in found_impact]
    return data


@router.get(
    "/v1/lineage",
    summary="The whole lineage graph: tables, models and pipelines as nodes, reads and writes as edges",
)
def get_lineage_graph(request: Request) -> dict[str, Any]:
    key = read_access(request)
    return graph_json(LineageGraph.load(request.app.state.runtime.metadata, key.project))


@router.get(
    "/v1/lineage/{name}/runs",
    summary="The newest runs that read or wrote a table or model, with the table's catalog docs",
    responses={404: {"description": "no run has read or written it"}, 409: {"description": "ambiguous"}},
)
def get_lineage_runs(
    name: str, request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 10
) -> dict[str, Any]:
    key = read_access(request)
    runtime = request.app.state.runtime
    dataset = one_dataset(LineageGraph.load(runtime.metadata, key.project), name, key.project)
    try:
        docs = table_docs(Path(runtime.config.root), dataset.name) if dataset.kind == "table" else None
    except CatalogError as exc:
        raise HTTPException(500, f"the project's catalog files cannot be read: {exc}") from None
    found = runs_touching(runtime.metadata, key.project, dataset, limit)
    return {"kind": dataset.kind, "name": dataset.name, "docs": docs, "runs": [r.to_json() for r in found]}


def one_dataset(graph: LineageGraph, name: str, project: str) -> Dataset:
    """The one table or model called `name` (`table:x`/`model:x` picks a kind); 404 or 409 otherwise."""
    found = graph.find(name)
    if not found:
        raise HTTPException(404, f"no run of project {project!r} has read or written {name!r}")
    if len(found) > 1:
        raise HTTPException(
            409, f"{name!r} is both a table and a model; ask for table:{name} or model:{name}"
        )
    return found[0]
