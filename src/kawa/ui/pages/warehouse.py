"""The warehouse pages: every table with its counts and catalog description, one table's columns,
partitions and rows a page at a time, and a SQL box for admins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.ui.render import page
from kawa.ui.session import Viewer, admin, viewer
from kawa.warehouse import SQLError, browse

router = APIRouter()

PAGE_ROWS = 50
# The SQL box shows at most this many rows; the API (`POST /v1/sql`) returns more.
SQL_ROWS = 500
Offset = Annotated[int, Query(ge=0)]


@router.get("/warehouse", response_class=HTMLResponse)
async def warehouse(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    data = await run_in_threadpool(_tables, request, who)
    return page(request, "warehouse.html", who, **data)


@router.post("/warehouse/sql", response_class=HTMLResponse)
async def run_sql(request: Request, who: Annotated[Viewer, Depends(admin)]) -> HTMLResponse:
    """Run the SQL box: the same query as `POST /v1/sql`, its first rows as a table or DuckDB's error."""
    form = await request.form()
    sql = str(form.get("sql") or "").strip()
    result = error = None
    if not sql:
        error = "Type a SQL statement first, e.g. SELECT event_name, count(*) FROM events GROUP BY 1"
    else:
        store = request.app.state.runtime.warehouse(who.project)
        try:
            result = await run_in_threadpool(browse.query_rows, store, sql, SQL_ROWS)
        except SQLError as exc:
            error = str(exc)
    return page(request, "warehouse_sql_result.html", who, result=result, error=error, limit=SQL_ROWS)


@router.get("/warehouse/{name}", response_class=HTMLResponse)
async def table(
    request: Request, name: str, who: Annotated[Viewer, Depends(viewer)], offset: Offset = 0
) -> HTMLResponse:
    data = await run_in_threadpool(_table, request, who, name, offset)
    return page(request, "warehouse_table.html", who, **data)


@router.get("/warehouse/{name}/rows", response_class=HTMLResponse)
async def rows(
    request: Request, name: str, who: Annotated[Viewer, Depends(viewer)], offset: Offset = 0
) -> HTMLResponse:
    """One page of the preview (the pager swaps it in place)."""
    found = await run_in_threadpool(_page, request, who, name, offset)
    return page(request, "warehouse_rows.html", who, name=name, rows=found, per_page=PAGE_ROWS)


def _tables(request: Request, who: Viewer) -> dict[str, Any]:
    runtime = request.app.state.runtime
    found = browse.listing(runtime.warehouse(who.project), Path(runtime.config.root))
    return {"listing": found, "sql_limit": SQL_ROWS}


def _table(request: Request, who: Viewer, name: str, offset: int) -> dict[str, Any]:
    runtime = request.app.state.runtime
    try:
        detail = browse.table_detail(runtime.warehouse(who.project), name, Path(runtime.config.root))
    except browse.TableNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"name": name, "detail": detail, "rows": _page(request, who, name, offset), "per_page": PAGE_ROWS}


def _page(request: Request, who: Viewer, name: str, offset: int) -> browse.Rows:
    store = request.app.state.runtime.warehouse(who.project)
    try:
        return browse.page(store, name, offset, PAGE_ROWS)
    except browse.TableNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
