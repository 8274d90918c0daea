"""Registered models as a notebook shows them: one version (`Model`), the project's models (`ModelList`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from html import escape
from typing import Any

from kawa.models.records import ModelSummary, ModelVersion
from kawa.notebook import _html


class Model:
    """One registered version: its metrics, inputs, aliases and the run that trained it."""

    def __init__(self, version: ModelVersion) -> None:
        self.record = version

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.record.aliases

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.metrics

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """The columns a prediction takes, with their types, as the signature records them."""
        found = self.record.signature.get("inputs", [])
        return list(found) if isinstance(found, list) else []

    @property
    def example(self) -> dict[str, Any]:
        """A row this model takes (a copy of the signature's example), to change and predict from."""
        found = self.record.signature.get("example", {})
        return dict(found) if isinstance(found, Mapping) else {}

    def _repr_html_(self) -> str:
        r = self.record
        aliases = f" ({', '.join(r.aliases)})" if r.aliases else ""
        title = _html.Html(
            f"model <strong>{escape(r.name)}</strong> version {r.version}{escape(aliases)} · "
            f"{escape(r.flavor)} · registered {escape(_html.text(r.created_at))}"
            + (f" by run {_html.code(r.run_id)}" if r.run_id else "")
        )
        parts = []
        metrics = _html.scalars(r.metrics)
        if metrics:
            parts.append("<div><em>metrics</em></div>" + _html.fields(metrics))
        if self.inputs:
            rows = [[i.get("name"), i.get("type")] for i in self.inputs]
            parts.append("<div><em>inputs</em></div>" + _html.table(["column", "type"], rows))
        if r.training:
            parts.append("<div><em>training</em></div>" + _html.fields(_html.scalars(r.training)))
        return _html.block(title, *parts)

    def __repr__(self) -> str:
        r = self.record
        metrics = ", ".join(f"{k}={_html.text(v)}" for k, v in _html.scalars(r.metrics))
        return f"Model({r.name!r}, version={r.version}, aliases={list(r.aliases)}, {metrics})"


class ModelList:
    """The project's models, each with its newest version and its aliases."""

    def __init__(self, models: list[ModelSummary]) -> None:
        self.models = models

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[ModelSummary]:
        return iter(self.models)

    def __getitem__(self, name: str) -> ModelSummary:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r}; models: {', '.join(self.names) or 'none'}")

    def _rows(self) -> list[list[Any]]:
        return [
            [m.name, m.latest_version, m.versions, _aliases(m.aliases), m.description, m.created_at]
            for m in self.models
        ]

    _COLUMNS = ("model", "latest", "versions", "aliases", "description", "created")

    def _repr_html_(self) -> str:
        if not self.models:
            return _html.block("no models registered yet")
        return _html.block(
            _html.Html(f"<strong>{len(self.models)} model{'s' if len(self.models) != 1 else ''}</strong>"),
            _html.table(self._COLUMNS, self._rows()),
        )

    def __repr__(self) -> str:
        return _html.text_table(self._COLUMNS, self._rows()) if self.models else "no models registered yet"


def _aliases(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"{alias} → v{version}" for alias, version in aliases.items())


def version_from_json(data: Mapping[str, Any]) -> ModelVersion:
    """A ModelVersion from the JSON of the HTTP API (`GET /v1/models/{name}`)."""
    return ModelVersion(
        project=data["project"],
        name=data["name"],
        version=int(data["version"]),
        flavor=data.get("flavor", ""),
        artifact=data.get("artifact", ""),
        run_id=data.get("run_id"),
        signature=data.get("signature") or {},
        metrics=data.get("metrics") or {},
        params=data.get("params") or {},
        training=data.get("training") or {},
        created_at=datetime.fromisoformat(data["created_at"]),
        aliases=tuple(data.get("aliases") or ()),
    )


def summary_from_json(project: str, data: Mapping[str, Any]) -> ModelSummary:
    """A ModelSummary from the JSON of the HTTP API (`GET /v1/models`)."""
    return ModelSummary(
        project=project,
        name=data["name"],
        description=data.get("description", ""),
        created_at=datetime.fromisoformat(data["created_at"]),
        latest_version=data.get("latest_version"),
        versions=int(data.get("versions", 0)),
        aliases={str(k): int(v) for k, v in (data.get("aliases") or {}).items()},
    )
