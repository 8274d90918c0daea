"""Logging in with an admin or read key, and out again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kawa.ui.render import page
from kawa.ui.session import COOKIE, COOKIE_MAX_AGE_S, check_key, current, safe_next

router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/", reason: str = "") -> HTMLResponse:
    return page(request, "login.html", current(request), next=safe_next(next), reason=reason, error=None)


@router.post("/login", response_model=None)
async def login(
    request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    try:
        check_key(request, key)
    except ValueError as exc:
        return page(
            request, "login.html", None, status_code=401, next=safe_next(next), reason="", error=str(exc)
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, key.strip(), max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="strict", path="/"
    )
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
