"""kawa's web UI at `/`: server-rendered pages over the parts the HTTP API uses, with no logic of its own.

Pages are Jinja2 templates; htmx swaps their live parts; Chart.js draws charts and Cytoscape draws
graphs. Every browser file is served from the package (no CDN), so the UI works without internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kawa.ui.pages import bandits as bandit_pages
from kawa.ui.pages import events, lineage, login, models, overview, pipelines, predictions, runs, warehouse
from kawa.ui.render import page
from kawa.ui.session import LoginRequired, current, login_url

STATIC = Path(__file__).parent / "static"
ROUTERS = [
    login.router,
    overview.router,
    events.router,
    warehouse.router,
    pipelines.router,
    runs.router,
    models.router,
    predictions.router,
    bandit_pages.router,
    lineage.router,
]


def install(app: FastAPI) -> None:
    """Serve the UI's pages and files from `app`."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_url, exc.reason)
        if request.headers.get("hx-request"):
            # htmx follows HX-Redirect with a full page load (a plain redirect would swap into a fragment).
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A page that says what went wrong, for UI requests that fail."""
    return page(request, "error.html", current(request), status_code=status, title=title, message=message)


__all__ = ["HTTPException", "error_page", "install"]
