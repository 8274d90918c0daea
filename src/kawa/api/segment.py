"""Segment's HTTP Tracking API on kawa: point a Segment library's host at kawa and its events land here."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kawa.api.ingest import read_body
from kawa.auth import Role
from kawa.events._nesting import NotJSON, shallow_batch
from kawa.events.segment import SEGMENT_PATHS, SUCCESS_RESPONSE, SegmentError, to_envelopes, write_key
from kawa.events.validate import BodyError, pseudo_depth

router = APIRouter(tags=["segment"])
_decoder = msgspec.json.Decoder()


def _route(path_type: str):  # type: ignore[no-untyped-def]
    async def segment(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        limits = runtime.config.ingest
        raw = await read_body(request, limits.max_body_bytes)
        deep: set[int] = set()  # messages of a batch too deep to parse: refused alone, the rest kept
        try:
            if pseudo_depth(raw) > limits.max_depth + 2:  # the batch wrapper adds two levels
                body, deep = shallow_batch(raw, limits.max_depth)
            else:
                body = _decoder.decode(raw)
        except NotJSON as exc:
            raise BodyError(f"the body is nested deeper than {limits.max_depth} levels: {exc}") from None
        except (msgspec.DecodeError, RecursionError) as exc:
            raise BodyError(f"the body is not valid JSON: {exc}") from None
        try:
            key = write_key(body, request.headers.get("authorization"))
        except SegmentError as exc:  # a malformed Basic header: no usable key
            raise HTTPException(401, str(exc)) from None
        if key is None:
            raise HTTPException(401, "no write key; send it as the HTTP Basic user name or as writeKey")
        info = runtime.keyring.verify(key)
        if info is None:
            raise HTTPException(401, "the write key is not valid (unknown or revoked)")
        if info.role not in (Role.WRITE, Role.ADMIN):
            raise HTTPException(403, f"a {info.role.value} key cannot send events; use the write key")
        try:
            envelopes, rejects = to_envelopes(body, path_type, received_at=datetime.now(UTC))
        except SegmentError as exc:
            raise BodyError(str(exc)) from None
        too_deep = f"nested deeper than {limits.max_depth} levels"
        rejects = [(i, too_deep if i in deep else why, message) for i, why, message in rejects]
        collector = request.app.state.collector
        with collector.admit():
            result = await run_in_threadpool(
                collector.ingest_envelopes, envelopes, rejects, project=info.project
            )
        if result.accepted == 0 and result.rejected > 0:
            return JSONResponse({"success": False, **result.to_json()}, status_code=400)
        return JSONResponse({**SUCCESS_RESPONSE, **result.to_json()})

    return segment


for _path, _type in SEGMENT_PATHS.items():
    router.add_api_route(
        _path,
        _route(_type),
        methods=["POST"],
        summary=f"Segment-compatible {_type} call",
        response_model=None,
    )
