"""Bandit routes: choose an arm (read key), and what each bandit has learned (read key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from kawa.api.auth import read_access
from kawa.auth import KeyInfo
from kawa.bandits import BanditError
from kawa.bandits.service import BanditNotFound, BanditService, for_app
from kawa.stores.metadata import MetadataError

router = APIRouter(tags=["bandits"])


class ChooseRequest(BaseModel):
    """Who the choice is for and in which context; both optional."""

    user_id: str | int | None = Field(
        None, description="The user the arm is shown to: a purchase by this user can reward the decision"
    )
    context: dict[str, Any] | None = Field(
        None, description="Values of the bandit's declared context keys, e.g. {'device': 'mobile'}"
    )


def _service(request: Request) -> BanditService:
    return for_app(request.app.state)


@router.post(
    "/v1/bandits/{name}/choose",
    summary="Choose an arm and record the decision; send its decision_id with the events that reward it",
    responses={
        200: {"description": "{arm, decision_id, bandit, context}"},
        400: {"description": "bad user_id or context"},
        404: {"description": "no such bandit"},
        503: {"description": "the metadata store could not record the decision; retry"},
    },
)
def choose(
    name: str,
    request: Request,
    key: Annotated[KeyInfo, Depends(read_access)],  # a dependency: checked before the body is
    body: ChooseRequest | None = None,
) -> dict[str, Any]:
    # A plain def: recording the decision is a metadata-store transaction (FastAPI runs it in a thread).
    user_id, context = (body.user_id, body.context) if body is not None else (None, None)
    try:
        decision = _service(request).choose(key.project, name, user_id=user_id, context=context)
    except BanditNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except BanditError as exc:
        raise HTTPException(400, str(exc)) from None
    except MetadataError as exc:  # the store is locked or unreachable: worth a retry, not a 500
        raise HTTPException(503, f"the decision could not be recorded: {exc}", {"Retry-After": "1"}) from None
    return {
        "arm": decision.arm,
        "decision_id": decision.decision_id,
        "bandit": decision.bandit,
        "context": decision.context,
    }


@router.get("/v1/bandits", summary="The project's bandits: arms with pulls, rewards, mean reward and score")
def list_bandits(request: Request) -> dict[str, Any]:
    key = read_access(request)
    return _service(request).overview(key.project)


@router.get(
    "/v1/bandits/{name}",
    summary="One bandit: its declaration, and pulls, rewards, mean reward and score per arm and context",
    responses={404: {"description": "no such bandit"}},
)
def get_bandit(name: str, request: Request) -> dict[str, Any]:
    key = read_access(request)
    try:
        return _service(request).show(key.project, name)
    except BanditNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get(
    "/v1/bandits/{name}/decisions",
    summary="A bandit's newest decisions, newest first: arm, user, time and the reward, if any",
    responses={404: {"description": "no such bandit"}},
)
def list_decisions(name: str, request: Request, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    key = read_access(request)
    try:
        return {"bandit": name, "decisions": _service(request).decisions(key.project, name, limit)}
    except BanditNotFound as exc:
        raise HTTPException(404, str(exc)) from None
