"""Which project and role a request speaks for, from `Authorization: Bearer KEY` or HTTP Basic."""

from __future__ import annotations

import base64

from fastapi import HTTPException, Request

from kawa.auth import KeyInfo, Role


def request_key(request: Request) -> str | None:
    """The key a request carries: a Bearer token, or the user name of HTTP Basic (Segment's way)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(401, "the Basic credentials are not valid base64") from None
        return user or None
    return None


def authenticate(request: Request, *roles: Role) -> KeyInfo:
    """The caller's key, which must have one of `roles`; 401 without a valid key, 403 with the wrong one."""
    key = request_key(request)
    if key is None:
        raise HTTPException(401, "no API key; send Authorization: Bearer KEY", {"WWW-Authenticate": "Bearer"})
    info = request.app.state.runtime.keyring.verify(key)
    if info is None:
        raise HTTPException(
            401, "the API key is not valid (unknown or revoked)", {"WWW-Authenticate": "Bearer"}
        )
    if info.role not in roles:
        allowed = " or ".join(f"{'an' if r.value[0] in 'aeiou' else 'a'} {r.value} key" for r in roles)
        raise HTTPException(403, f"a {info.role.value} key cannot do this; use {allowed}")
    return info


def read_access(request: Request) -> KeyInfo:
    return authenticate(request, Role.READ, Role.ADMIN)


def admin_access(request: Request) -> KeyInfo:
    return authenticate(request, Role.ADMIN)
