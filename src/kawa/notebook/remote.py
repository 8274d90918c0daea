"""A notebook on a running kawa server, over its HTTP API with one key.

SQL, tables and starting runs need the project's admin key; predictions, models and runs need its
read key (or the admin key). Training sets and registering models need the project's stores, so they
work on a local project folder only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pyarrow as pa

from kawa import __version__
from kawa.client import KawaClientError
from kawa.notebook import _html, _rows
from kawa.notebook.models import Model, ModelList, summary_from_json, version_from_json
from kawa.notebook.results import Predictions, Result, StoredPrediction
from kawa.notebook.runs import Run, RunList, print_step, record_from_json

PREDICT_CHUNK = 1000  # rows per request: well inside the server's body and row limits
FINISHED = frozenset({"succeeded", "failed", "skipped", "cancelled", "timeout"})
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=([^\]]+))?\]")
_encoder = msgspec.json.Encoder()


class RemoteProject:
    """A project on a kawa server; the same calls as a local project, over HTTP."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0, poll_s: float = 0.5) -> None:
        self.url = url.rstrip("/")
        self.poll_s = poll_s
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"kawa-notebook/{__version__}"},
        )
        self._project: str | None = None

    @property
    def project(self) -> str:
        """The project the key belongs to."""
        if self._project is None:
            self._project = str(self._call("GET", "/v1/models")["project"])
        return self._project

    def sql(self, query: str, *, limit: int = 10_000) -> Result:
        """Run SQL on the server's warehouse (admin key); at most `limit` rows come back."""
        answer = self._call("POST", "/v1/sql", json={"sql": query, "limit": limit})
        columns = answer["columns"]
        arrays = [_column([r[i] for r in answer["rows"]], c["type"]) for i, c in enumerate(columns)]
        table = pa.Table.from_arrays(arrays, names=[c["name"] for c in columns])
        return Result(table, truncated=bool(answer.get("truncated")))

    def tables(self) -> list[str]:
        """The project's warehouse tables (admin key)."""
        return [t["name"] for t in self._call("GET", "/v1/tables")["tables"]]

    def models(self) -> ModelList:
        answer = self._call("GET", "/v1/models")
        return ModelList([summary_from_json(answer["project"], m) for m in answer["models"]])

    def model(self, name: str, version: int | None = None) -> Model:
        """One version of a model (the newest when `version` is None)."""
        versions = self._call("GET", f"/v1/models/{quote(name, safe='')}")["versions"]
        if version is None:
            return Model(version_from_json(versions[-1]))
        for v in versions:
            if v["version"] == version:
                return Model(version_from_json(v))
        known = ", ".join(str(v["version"]) for v in versions)
        raise LookupError(f"model {name!r} has no version {version}; it has {known}")

    def predict(
        self, model: str, rows: Any, *, version: int | None = None, alias: str = "production"
    ) -> Predictions:
        """Predictions of `model` (at `alias`, or `version`) for a dict, a list of dicts or a table."""
        given = _rows.to_rows(rows)
        query: dict[str, Any] = {"alias": alias} if version is None else {"version": version}
        path = f"/v1/models/{quote(model, safe='')}/predict"
        if isinstance(given, Mapping):
            answer = self._call("POST", path, params=query, content=_encoder.encode(given))
            return Predictions(model, answer["version"], _rows.to_arrow([given]), [answer["prediction"]])
        values: list[Any] = []
        used = version
        for start in range(0, len(given), PREDICT_CHUNK):
            chunk = given[start : start + PREDICT_CHUNK]
            answer = self._call("POST", path, params=query, content=_encoder.encode(chunk))
            values += answer["predictions"]
            # Every chunk asks the version the first one got, so an alias moved meanwhile splits nothing.
            used = int(answer["version"])
            query = {"version": used}
        if used is None:  # no rows: ask once for the version the alias points at
            used = int(self._call("POST", path, params=query, content=b"[]")["version"])
        return Predictions(model, used, _rows.to_arrow(rows if _rows.is_table(rows) else given), values)

    def prediction(self, model: str, entity: str) -> StoredPrediction:
        """The newest stored prediction of `model` for `entity`, as the product reads it."""
        found = self._call("GET", f"/v1/predictions/{quote(model, safe='')}/{quote(entity, safe='')}")
        fields = {
            k: found.get(k)
            for k in ("score", "model_version", "computed_at", "source", "event_id", "trigger")
        }
        return StoredPrediction(model, entity, **{k: v for k, v in fields.items() if v is not None})

    def run(
        self,
        pipeline: str,
        *,
        experiment: str = "notebook",
        wait: bool = True,
        timeout_s: float | None = None,
        progress: bool = True,
        **params: Any,
    ) -> Run:
        """Start a run of the server's pipeline `pipeline` (admin key); with `wait`, follow it to the end.

        Interrupting the wait leaves the run going on the server; `k.runs()` shows it.
        """
        body = {"params": params, "experiment": experiment}
        started = self._call(
            "POST", f"/v1/pipelines/{quote(pipeline, safe='')}/runs", content=_encoder.encode(body)
        )
        run_id = started["run_id"]
        if progress:
            print(f"run {run_id} of pipeline {pipeline}", flush=True)
        record = record_from_json(self._call("GET", f"/v1/runs/{run_id}"))
        shown: set[str] = set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while wait and record.status not in FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id} is still {record.status} after {timeout_s}s; it goes on on the server, "
                    f"k.runs() shows it"
                )
            time.sleep(self.poll_s)
            record = record_from_json(self._call("GET", f"/v1/runs/{run_id}"))
            for s in record.steps:
                if progress and s.status in FINISHED and s.step not in shown:
                    shown.add(s.step)
                    print_step(s.step, s.status, s.duration_s)
        return Run(record)

    def runs(self, pipeline: str | None = None, *, limit: int = 20) -> RunList:
        """The newest runs of the project (of one pipeline when named)."""
        query: dict[str, Any] = {"limit": limit} | ({"pipeline": pipeline} if pipeline else {})
        return RunList([record_from_json(r) for r in self._call("GET", "/v1/runs", params=query)["runs"]])

    def training_set(self, *args: Any, **kwargs: Any) -> Result:
        raise NotImplementedError(_LOCAL_ONLY.format(call="training_set"))

    def register(self, *args: Any, **kwargs: Any) -> Model:
        raise NotImplementedError(_LOCAL_ONLY.format(call="register"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_html_(self) -> str:
        return _html.block(_html.Html("<strong>kawa</strong> (server)"), _html.fields([("url", self.url)]))

    def __repr__(self) -> str:
        return f"<kawa server {self.url}>"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if "content" in kwargs:
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KawaClientError(
                f"could not reach kawa at {self.url}: {type(exc).__name__}: {exc}; check that `kawa serve` "
                "runs at that address"
            ) from None
        if response.is_success:
            return response.json()
        raise _refused(method, path, response)


_LOCAL_ONLY = (
    "k.{call}(...) needs the project's own stores: connect in the project folder with kawa.connect() "
    "(or kawa.connect('path/to/project')); over HTTP kawa offers sql, tables, predict, prediction, models, "
    "model, run and runs"
)


def _refused(method: str, path: str, response: httpx.Response) -> Exception:
    """The error for an answer that is not a success: LookupError for 404, ValueError for a bad request."""
    try:
        data = response.json()
    except ValueError:
        data = None
    # FastAPI's errors are {"detail": ...}, kawa's own handlers answer {"error": ...}.
    detail = data.get("detail", data.get("error")) if isinstance(data, dict) else None
    if detail is None:
        detail = response.text[:500]
    message = f"{method} {path}: {detail if isinstance(detail, str) else _encoder.encode(detail).decode()}"
    status = response.status_code
    if status == 404:
        return LookupError(message)
    if status in (400, 422):
        return ValueError(message)
    if status in (401, 403):
        hint = "sql, tables and run need the project's admin key; the rest its read key"
        return PermissionError(f"{message} ({hint})")
    return KawaClientError(f"kawa answered {status}: {message}", status_code=status, body=response.text)


def _column(values: list[Any], type_text: str) -> pa.Array:
    """One result column, typed as the server said where Arrow can read that type back from JSON."""
    array = pa.array(values)
    target = _arrow_type(type_text)
    if target is None or array.type == target:
        return array
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return array


def _arrow_type(text: str) -> pa.DataType | None:
    """The Arrow type named `text` (as `str(type)` writes it), for the simple types; None for others.

    >>> _arrow_type("timestamp[us, tz=UTC]"), _arrow_type("int64"), _arrow_type("struct<a: int64>")
    (TimestampType(timestamp[us, tz=UTC]), DataType(int64), None)
    """
    match = _TIMESTAMP.fullmatch(text)
    if match:
        return pa.timestamp(match.group(1), tz=match.group(2))
    if text == "date32[day]":
        return pa.date32()
    try:
        return pa.type_for_alias(text)
    except ValueError:
        return None
