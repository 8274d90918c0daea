"""Warehouse routes: SQL and table listings for a project's admin."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kawa.api.auth import admin_access
from kawa.auth import KeyInfo

router = APIRouter(tags=["warehouse"])
_json = msgspec.json.Encoder(decimal_format="number")


class SQLRequest(BaseModel):
    sql: str = Field(..., description="One DuckDB SQL statement over the project's tables")
    limit: int = Field(10_000, ge=1, le=1_000_000, description="At most this many rows come back")


def _encode(value: Any) -> bytes:
    return _json.encode(value)


@router.post("/v1/sql", summary="Run SQL over the project's warehouse (admin key)")
async def run_sql(
    body: SQLRequest, request: Request, key: Annotated[KeyInfo, Depends(admin_access)]
) -> Response:
    warehouse = request.app.state.runtime.warehouse(key.project)
    table = await run_in_threadpool(warehouse.query, body.sql, limit=body.limit + 1)
    truncated = table.num_rows > body.limit
    table = table.slice(0, body.limit)
    payload = {
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "rows": [list(r.values()) for r in table.to_pylist()],
        "row_count": table.num_rows,
        "truncated": truncated,
    }
    return Response(_encode(payload), media_type="application/json")


@router.get("/v1/tables", summary="List the project's tables with row counts (admin key)")
async def list_tables(request: Request, key: Annotated[KeyInfo, Depends(admin_access)]) -> dict[str, Any]:
    warehouse = request.app.state.runtime.warehouse(key.project)
    tables = []
    for name in warehouse.tables():
        manifest = warehouse.table(name).manifest()
        tables.append(
            {
                "name": name,
                "rows": sum(f.rows for f in manifest.files),
                "files": len(manifest.files),
                "partition_by": manifest.partition_by,
            }
        )
    return {"project": key.project, "tables": tables}
