"""The models pages: every model; one model's versions side by side with their plots, promotion to an
alias (admin), and a "try it" form built from the version's input signature."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kawa.models import ModelNotFoundError, RowError
from kawa.models.report import Curves, curves, metric_table
from kawa.models.signature import row_from_text, text_value
from kawa.serving.online import predict
from kawa.ui.render import page
from kawa.ui.session import Viewer, admin, viewer

router = APIRouter()

# Versions compared side by side (the newest ones); older ones are a click away.
COMPARED = 8
# One colour per compared version, newest first, and grey for the chance / perfect-calibration line.
COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#0a7ea4", "#bf3989", "#57606a"]
GUIDE = "#9aa4b2"
FIELD = "input."


@router.get("/models", response_class=HTMLResponse)
async def models(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    found = await run_in_threadpool(request.app.state.registry.list_models, who.project)
    return page(request, "models.html", who, models=found)


@router.get("/models/{name}", response_class=HTMLResponse)
async def model(
    request: Request,
    name: str,
    who: Annotated[Viewer, Depends(viewer)],
    version: int | None = None,
    message: str | None = None,
) -> HTMLResponse:
    data = await run_in_threadpool(_model, request, who, name, version)
    return page(request, "model.html", who, message=message, **data)


@router.post("/models/{name}/promote", response_model=None)
async def promote(request: Request, name: str, who: Annotated[Viewer, Depends(admin)]) -> Response:
    """Point an alias at a version: the registry's promote, as `POST /v1/models/{name}/aliases/{alias}`."""
    form = await request.form()
    alias = str(form.get("alias") or "production").strip()
    try:
        version = int(str(form.get("version") or ""))
    except ValueError:
        raise HTTPException(400, "choose the version to promote") from None
    registry = request.app.state.registry
    try:
        before = await run_in_threadpool(registry.promote, who.project, name, version, alias)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    was = "a new alias" if before is None else f"was version {before}"
    message = f"{alias} now points at version {version} ({was})"
    return RedirectResponse(
        f"/models/{quote(name)}?version={version}&message={quote(message)}", status_code=303
    )


@router.post("/models/{name}/try", response_class=HTMLResponse)
async def try_it(
    request: Request, name: str, who: Annotated[Viewer, Depends(viewer)], version: int
) -> HTMLResponse:
    """Predict one row typed in the form: the same predict as `POST /v1/models/{name}/predict`."""
    form = await request.form()
    texts = {k[len(FIELD) :]: str(v) for k, v in form.items() if k.startswith(FIELD)}
    registry = request.app.state.registry
    error = result = None
    row: dict[str, Any] = {}
    try:
        found = await run_in_threadpool(registry.show, who.project, name, version)
        row = row_from_text(found.signature.get("inputs", []), texts)
        result = await run_in_threadpool(predict, registry, who.project, name, row, version=version)
    except RowError as exc:
        error = str(exc)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    output = found.signature.get("output", {})
    return page(request, "model_try_result.html", who, result=result, error=error, row=row, output=output)


def _model(request: Request, who: Viewer, name: str, version: int | None) -> dict[str, Any]:
    registry = request.app.state.registry
    try:
        versions = registry.list_versions(who.project, name)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    summary = next(m for m in registry.list_models(who.project) if m.name == name)
    by_number = {v.version: v for v in versions}
    if version is None:
        version = summary.aliases.get("production", versions[-1].version)
    if version not in by_number:
        raise HTTPException(
            404, f"model {name!r} has no version {version}; it has {', '.join(map(str, by_number))}"
        )
    selected = by_number[version]
    compared = versions[-COMPARED:][::-1]
    if selected not in compared:
        compared = [selected, *compared[: COMPARED - 1]]
    # Feature importance loads the model: only the selected version's is drawn, so only it is asked.
    shown = [curves(registry, v, importance=v.version == version) for v in compared]
    selected_curves = next(c for c in shown if c.version == version)
    inputs = selected.signature.get("inputs", [])
    example = selected.signature.get("example", {})
    return {
        "name": name,
        "summary": summary,
        "versions": versions[::-1],
        "compared": compared,
        "table": metric_table(compared),
        "selected": selected,
        "curves": {c.version: c for c in shown},
        "roc_chart": _roc_chart(shown),
        "calibration_chart": _calibration_chart(shown),
        "importance_chart": _importance_chart(selected_curves),
        "fields": [_field(f, example.get(f["name"])) for f in inputs],
        "output": selected.signature.get("output", {}),
    }


def _field(spec: dict[str, Any], example: Any) -> dict[str, Any]:
    """A form field for one input of the signature, pre-filled with the training example."""
    kind = spec.get("type")
    widget = "select" if spec.get("categories") is not None or kind == "boolean" else "text"
    choices = (
        ["true", "false"] if kind == "boolean" else [text_value(c) for c in spec.get("categories") or []]
    )
    return {
        "name": spec["name"],
        "kind": spec.get("kind", ""),
        "type": kind,
        "widget": "number" if kind == "number" else widget,
        "choices": choices,
        "value": text_value(example),
        "hint": _hint(spec),
    }


def _hint(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "array":
        return "tokens separated by commas"
    if kind == "date-time":
        return "ISO 8601, e.g. 2026-01-05T10:00:00Z"
    return ""


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _roc_chart(shown: list[Curves]) -> dict[str, Any] | None:
    datasets = [
        _series(f"v{c.version}", zip(c.roc["fpr"], c.roc["tpr"], strict=True), _color(i), 0)
        for i, c in enumerate(shown)
        if c.roc
    ]
    if not datasets:
        return None
    datasets.append(_diagonal("chance"))
    return _line_chart(datasets, "false positive rate", "true positive rate")


def _calibration_chart(shown: list[Curves]) -> dict[str, Any] | None:
    datasets = [
        _series(
            f"v{c.version}", ((b["mean_predicted"], b["observed_rate"]) for b in c.reliability), _color(i), 3
        )
        for i, c in enumerate(shown)
        if c.reliability
    ]
    if not datasets:
        return None
    datasets.append(_diagonal("perfectly calibrated"))
    return _line_chart(datasets, "mean predicted probability", "observed rate")


def _series(label: str, points: Any, color: str, radius: int) -> dict[str, Any]:
    return {
        "label": label,
        "data": [{"x": x, "y": y} for x, y in points],
        "borderColor": color,
        "backgroundColor": color,
        "pointRadius": radius,
        "borderWidth": 2,
    }


def _importance_chart(selected: Curves) -> dict[str, Any] | None:
    if not selected.importance:
        return None
    names = list(selected.importance)
    return {
        "type": "bar",
        "data": {
            "labels": names,
            "datasets": [
                {
                    "label": f"v{selected.version}: share of importance",
                    "data": [round(selected.importance[n], 4) for n in names],
                    "backgroundColor": COLORS[0],
                }
            ],
        },
        "options": {
            "indexAxis": "y",
            "plugins": {"legend": {"display": False}},
            "scales": {"x": {"min": 0}, "y": {"ticks": {"autoSkip": False, "font": {"size": 11}}}},
        },
    }


def _diagonal(label: str) -> dict[str, Any]:
    return {
        "label": label,
        "data": [{"x": 0, "y": 0}, {"x": 1, "y": 1}],
        "borderColor": GUIDE,
        "borderDash": [4, 4],
        "pointRadius": 0,
        "borderWidth": 1,
    }


def _line_chart(datasets: list[dict[str, Any]], x: str, y: str) -> dict[str, Any]:
    axis = {"type": "linear", "min": 0, "max": 1}
    return {
        "type": "line",
        "data": {"datasets": datasets},
        "options": {
            "parsing": True,
            "scales": {
                "x": {**axis, "title": {"display": True, "text": x}},
                "y": {**axis, "title": {"display": True, "text": y}},
            },
        },
    }
