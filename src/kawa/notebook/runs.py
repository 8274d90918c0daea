"""Pipeline runs as a notebook shows them: one run with its steps (`Run`) and a list of runs (`RunList`)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from html import escape
from typing import Any, TextIO

from kawa.notebook import _html
from kawa.pipelines.runs import RunRecord, StepRecord


class Run:
    """A pipeline run: its status, parameters, metrics and steps; `.record` is the full RunRecord."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def succeeded(self) -> bool:
        return self.record.succeeded

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.metrics

    @property
    def error(self) -> str | None:
        return self.record.error

    @property
    def steps(self) -> list[StepRecord]:
        return self.record.steps

    def _title(self) -> _html.Html:
        r = self.record
        return _html.Html(
            f"run {_html.code(r.run_id)} of pipeline <strong>{escape(r.pipeline)}</strong>: "
            f"{_html.status(r.status)} in {escape(_html.seconds(r.duration_s))} · "
            f"experiment {escape(r.experiment)}"
        )

    def _repr_html_(self) -> str:
        r = self.record
        parts = []
        if r.params:
            parts.append("<div><em>parameters</em></div>" + _html.fields(sorted(r.params.items())))
        if r.steps:
            rows = [
                [s.step, _html.status(s.status), _html.seconds(s.duration_s), _step_metrics(s), _step_note(s)]
                for s in r.steps
            ]
            parts.append(_html.table(["step", "status", "time", "metrics", "outputs / error"], rows))
        metrics = _html.scalars(r.metrics)
        if metrics:
            parts.append("<div><em>metrics</em></div>" + _html.fields(metrics))
        if r.error:
            parts.append("<div><em>error</em></div>" + _html.pre(r.error))
        return _html.block(self._title(), *parts)

    def __repr__(self) -> str:
        r = self.record
        lines = [
            f"run {r.run_id} of pipeline {r.pipeline}: {r.status} in {_html.seconds(r.duration_s)} "
            f"(experiment {r.experiment})"
        ]
        lines += [f"  {s.step}: {s.status} in {_html.seconds(s.duration_s)}" for s in r.steps]
        metrics = ", ".join(f"{k}={_html.text(v)}" for k, v in _html.scalars(r.metrics))
        if metrics:
            lines.append(f"  metrics: {metrics}")
        if r.error:
            lines.append(f"  error: {_headline(r.error)}")
        return "\n".join(lines)


def _step_metrics(step: StepRecord) -> str:
    return ", ".join(f"{k}={_html.text(v)}" for k, v in _html.scalars(step.metrics))


def _step_note(step: StepRecord) -> str:
    if step.error:
        return _headline(step.error)
    return ", ".join(f"{k}: {_html.text(v)}" for k, v in step.outputs.items())


def _headline(error: str) -> str:
    """The last line of a traceback: the exception and its message."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class RunList:
    """Recorded runs, newest first."""

    _COLUMNS = ("run", "pipeline", "experiment", "status", "time", "started", "metrics")

    def __init__(self, records: list[RunRecord]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Run]:
        return (Run(r) for r in self.records)

    def __getitem__(self, index: int) -> Run:
        return Run(self.records[index])

    def _rows(self, status: Any = str) -> list[list[Any]]:
        return [
            [r.run_id, r.pipeline, r.experiment, status(r.status), _html.seconds(r.duration_s), r.started_at,
             ", ".join(f"{k}={_html.text(v)}" for k, v in _html.scalars(r.metrics))]
            for r in self.records
        ]  # fmt: skip

    def _repr_html_(self) -> str:
        if not self.records:
            return _html.block("no runs")
        title = _html.Html(f"<strong>{len(self.records)} run{'s' if len(self.records) != 1 else ''}</strong>")
        return _html.block(title, _html.table(self._COLUMNS, self._rows(_html.status)))

    def __repr__(self) -> str:
        return _html.text_table(self._COLUMNS, self._rows()) if self.records else "no runs"


def print_step(step: str, status: str, duration_s: float | None, out: TextIO | None = None) -> None:
    """One line of progress while a run goes on, as `kawa pipeline run` prints it."""
    print(f"  {step}: {status} in {_html.seconds(duration_s)}", file=out or sys.stdout, flush=True)


def record_from_json(data: Mapping[str, Any]) -> RunRecord:
    """A RunRecord (with its steps) from the JSON of the HTTP API (`GET /v1/runs/{run_id}`)."""
    run_fields = {f.name for f in dataclasses.fields(RunRecord)} - {"steps"}
    step_fields = {f.name for f in dataclasses.fields(StepRecord)}
    values = {k: _time(k, v) for k, v in data.items() if k in run_fields}
    steps = [
        StepRecord(**{k: _time(k, v) for k, v in s.items() if k in step_fields})
        for s in data.get("steps") or []
    ]
    return RunRecord(**values, steps=steps)


def _time(name: str, value: Any) -> Any:
    if isinstance(value, str) and (name.endswith("_at") or name == "logical_date"):
        return datetime.fromisoformat(value)
    return value
