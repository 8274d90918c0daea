"""Who is looking at the UI: an admin or read key kept in an HttpOnly cookie, checked on every request.

The cookie holds the key itself and is verified against the keyring each time, so a revoked key
stops working at once, as it does for the API. Write keys cannot log in: they ship inside web pages.
State-changing requests must come from the UI's own origin (SameSite=Strict cookie plus an Origin
check), so another site cannot make a logged-in browser promote a model or start a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request

from kawa.auth import InvalidKeyError, KeyInfo, Role

COOKIE = "kawa_key"
# A login lasts a working week; the key's revocation ends it sooner.
COOKIE_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Viewer:
    """A logged-in person: their project and whether they may change things."""

    project: str
    role: Role

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN


class LoginRequired(Exception):
    """The page needs a login (or an admin login); the UI answers with a redirect to /login."""

    def __init__(self, next_url: str, reason: str = "") -> None:
        super().__init__(reason)
        self.next_url = next_url
        self.reason = reason


def check_key(request: Request, key: str) -> KeyInfo:
    """The key's owner if it may log in; ValueError with what to do otherwise."""
    key = key.strip()
    if not key:
        raise ValueError("enter your project's admin key (or its read key for read-only pages)")
    try:
        info = request.app.state.runtime.keyring.verify(key)
    except InvalidKeyError:
        info = None
    if info is None:
        raise ValueError("this key is not valid (unknown or revoked); `kawa keys` lists the project's keys")
    if info.role is Role.WRITE:
        raise ValueError(
            "a write key cannot log in (it ships inside web pages, so it is public); "
            "use the project's admin key, or its read key for read-only pages"
        )
    return info  # type: ignore[no-any-return]


def current(request: Request) -> Viewer | None:
    """The logged-in viewer, or None when the cookie is missing, invalid or revoked."""
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    try:
        info = check_key(request, key)
    except ValueError:
        return None
    return Viewer(info.project, info.role)


def viewer(request: Request) -> Viewer:
    """A FastAPI dependency: the viewer, or a redirect to the login page."""
    found = current(request)
    if found is None:
        raise LoginRequired(_here(request))
    _check_origin(request)
    return found


def admin(request: Request) -> Viewer:
    """A FastAPI dependency for actions and pages only an admin key may use."""
    found = viewer(request)
    if not found.admin:
        if request.method == "GET":
            raise LoginRequired(_here(request), "this page needs the project's admin key")
        raise HTTPException(403, "a read key cannot do this; log in with the project's admin key")
    return found


def login_url(next_url: str, reason: str = "") -> str:
    url = "/login?next=" + quote(next_url, safe="/")
    return url + ("&reason=" + quote(reason) if reason else "")


def safe_next(next_url: str | None) -> str:
    """Where to go after login: a path on this server only (never another site)."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    return next_url


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _check_origin(request: Request) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", "")
    if origin is None or urlsplit(origin).netloc != host:
        raise HTTPException(403, "this action must come from kawa's own pages (the Origin does not match)")
