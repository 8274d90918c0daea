"""Warehouse routes: SQL (admin key), and the project's tables with their columns, partitions and rows a
page at a time (table listing: admin key; one table and its pages: read key, as the UI's read-only
pages show them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kawa import sqlml
from kawa.api.auth import admin_access, read_access
from kawa.auth import KeyInfo
from kawa.warehouse import browse

router = APIRouter(tags=["warehouse"])
_json = msgspec.json.Encoder(decimal_format="number")


class SQLRequest(BaseModel):
    sql: str = Field(
        ...,
        description="DuckDB SQL over the project's tables; also CREATE MODEL, DROP MODEL and ML.PREDICT / "
        "ML.EVALUATE / ML.CENTROIDS, several statements separated by ';' (the last one's rows come back)",
    )
    limit: int = Field(10_000, ge=1, le=1_000_000, description="At most this many rows come back")


def _encode(value: Any) -> bytes:
    return _json.encode(value)


@router.post("/v1/sql", summary="Run SQL over the project's warehouse (admin key)")
async def run_sql(
    body: SQLRequest, request: Request, key: Annotated[KeyInfo, Depends(admin_access)]
) -> Response:
    warehouse = request.app.state.runtime.warehouse(key.project)
    registry = request.app.state.registry  # for CREATE MODEL and ML.* calls (docs/sql-models.md)
    table, truncated = await run_in_threadpool(sqlml.run_sql, warehouse, registry, body.sql, body.limit)
    payload = {
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "rows": [list(r.values()) for r in table.to_pylist()],
        "row_count": table.num_rows,
        "truncated": truncated,
    }
    return Response(_encode(payload), media_type="application/json")


@router.get(
    "/v1/tables",
    summary="List the project's tables with row, file and partition counts and descriptions (read key)",
)
async def list_tables(request: Request, key: Annotated[KeyInfo, Depends(read_access)]) -> dict[str, Any]:
    runtime = request.app.state.runtime
    found = await run_in_threadpool(browse.listing, runtime.warehouse(key.project), Path(runtime.config.root))
    tables = [{**t.to_json(), "description": found.descriptions.get(t.name, "")} for t in found.tables]
    return {"project": key.project, "tables": tables, "catalog_error": found.catalog_error}


@router.get(
    "/v1/tables/{name}",
    summary="One table: row, file and partition counts from its manifest, its columns with the catalog's "
    "descriptions, and its newest partitions (read key)",
    responses={404: {"description": "no such table"}},
)
def show_table(name: str, request: Request) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread, as it reads manifests and Parquet footers.
    key = read_access(request)
    runtime = request.app.state.runtime
    try:
        found = browse.table_detail(runtime.warehouse(key.project), name, Path(runtime.config.root))
    except browse.TableNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return found.to_json()


@router.get(
    "/v1/tables/{name}/rows",
    summary="A page of the table's rows in storage order; reads only the files that hold the page (read key)",
    responses={404: {"description": "no such table"}},
)
def table_rows(
    name: str,
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=browse.MAX_PAGE_ROWS)] = 50,
) -> Response:
    key = read_access(request)
    warehouse = request.app.state.runtime.warehouse(key.project)
    try:
        rows = browse.page(warehouse, name, offset, limit)
    except browse.TableNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(_encode(rows.to_json()), media_type="application/json")
