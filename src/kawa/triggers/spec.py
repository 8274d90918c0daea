"""Triggers: which events ask for a prediction, of which model, about which entity, and where it goes.

A trigger is declared in the project's code (a top-level `Trigger`, found like feature views) or in
`triggers.yaml` beside kawa.yaml. The trigger worker of `kawa serve` scores every event that matches
`on` with the model at `alias`, from a row made of the event's fields, the batch features of the
entity and the streaming features as of the event, and stores the result under the entity's key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kawa.features import FeatureView
from kawa.project_code import declarations
from kawa.streaming import Field, Match, StreamError, StreamView

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # as the registry allows
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_FIELDS = (
    "name",
    "on",
    "key",
    "model",
    "alias",
    "features",
    "batch_features",
    "webhook",
    "emit",
    "description",
)


class TriggerError(ValueError):
    """A trigger declaration is invalid; the message names the trigger and what to change."""


class Trigger:
    """Score each event that matches `on` with `model` at `alias`, keyed by the event's `key` field.

    >>> t = Trigger("intent_on_view", on={"event_name": "view"}, key="keys.session_id", model="intent")
    >>> t.match.test({"event_name": "view"}), t.key_of({"keys": {"session_id": 42}})
    (True, '42')
    """

    __kawa_kind__ = "trigger"

    def __init__(
        self,
        name: str,
        *,
        on: Mapping[str, Any] | Match,
        key: str,
        model: str,
        alias: str = "production",
        features: Sequence[StreamView] = (),
        batch_features: Sequence[FeatureView] = (),
        webhook: str | None = None,
        emit: str | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TriggerError(
                f"trigger name {name!r} is not allowed; "
                "use letters, digits, '_' or '-', starting with a letter"
            )
        at = f"trigger {name!r}"
        self.name = name
        try:
            self.match = Match.from_spec(on, where=f"{at}: on")
            self.key = key
            self._key_field = Field(key, where=f"{at}: key")
        except StreamError as exc:
            raise TriggerError(str(exc)) from None
        if self.match.matches_all:
            raise TriggerError(
                f"{at}: on matches every event; name the events, e.g. {{'event_name': 'view'}}"
            )
        if not isinstance(model, str) or not _MODEL.fullmatch(model):
            raise TriggerError(f"{at}: model {model!r} is not a model name such as 'purchase_intent'")
        if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
            raise TriggerError(f"{at}: alias {alias!r} must be lowercase letters, digits, '-' or '_'")
        self.model = model
        self.alias = alias
        self.features = tuple(_stream_views(at, features))
        self.batch_features = tuple(_batch_views(at, batch_features))
        self.batch_keys = tuple(Field(view.entity.key) for view in self.batch_features)
        self.webhook = _check_webhook(at, webhook)
        self.emit = _check_emit(at, emit, self.match)
        self.description = description

    @property
    def on(self) -> dict[str, Any]:
        """The filter as declared (a mapping)."""
        return dict(self.match.spec)

    def key_of(self, event: dict[str, Any]) -> str | None:
        """The entity key of a decoded event (ids sent as integers become text), or None if it has none."""
        value: str | None = self._key_field.value(event)
        return value or None

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON: what `kawa triggers list` and `GET /v1/triggers` show."""
        return {
            "name": self.name,
            "on": self.on,
            "key": self.key,
            "model": self.model,
            "alias": self.alias,
            "features": [v.name for v in self.features],
            "batch_features": [v.name for v in self.batch_features],
            "webhook": self.webhook,
            "emit": self.emit,
            "description": self.description,
        }

    def __repr__(self) -> str:
        return f"Trigger({self.name!r}, on={self.on!r}, key={self.key!r}, model='{self.model}@{self.alias}')"

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        stream_views: Mapping[str, StreamView] | None = None,
        feature_views: Mapping[str, FeatureView] | None = None,
    ) -> Trigger:
        """A trigger from parsed YAML/JSON; `features` and `batch_features` name views of the project."""
        if not isinstance(data, Mapping):
            raise TriggerError(f"a trigger must be a mapping of {', '.join(_FIELDS)}, not {data!r}")
        if True in data and "on" not in data:
            # YAML 1.1 reads a bare `on:` key as the boolean true.
            data = {("on" if k is True else k): v for k, v in data.items()}
        name = data.get("name")
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise TriggerError(f"trigger {name!r}: unknown field {unknown[0]!r}; use {', '.join(_FIELDS)}")
        missing = [k for k in ("name", "on", "key", "model") if k not in data]
        if missing:
            raise TriggerError(f"trigger {name!r}: {', '.join(missing)} missing")
        at = f"trigger {name!r}"
        options = {k: v for k, v in data.items() if k not in ("name", "features", "batch_features")}
        return cls(
            name,  # type: ignore[arg-type]
            features=_named(at, "features", data.get("features"), stream_views or {}, "stream view"),
            batch_features=_named(
                at, "batch_features", data.get("batch_features"), feature_views or {}, "feature view"
            ),
            **options,
        )


def triggers_from_yaml(
    text_or_path: str | Path,
    *,
    stream_views: Mapping[str, StreamView] | None = None,
    feature_views: Mapping[str, FeatureView] | None = None,
) -> list[Trigger]:
    """The triggers of a YAML document (`triggers: [...]`), given as text or as a file path."""
    try:
        where, items = declarations(text_or_path, "triggers")
    except ValueError as exc:
        raise TriggerError(str(exc)) from None
    try:
        return [
            Trigger.from_mapping(item, stream_views=stream_views, feature_views=feature_views)
            for item in items
        ]
    except TriggerError as exc:
        raise TriggerError(f"{where}: {exc}") from None


def _named(at: str, field: str, names: Any, known: Mapping[str, Any], kind: str) -> list[Any]:
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TriggerError(f"{at}: {field} must be a list of {kind} names")
    missing = [n for n in names if n not in known]
    if missing:
        listed = ", ".join(sorted(known)) or "none"
        raise TriggerError(f"{at}: no {kind} named {missing[0]!r} in the project's code (known: {listed})")
    return [known[n] for n in names]


def _stream_views(at: str, views: Sequence[StreamView]) -> list[StreamView]:
    out = list(views)
    for view in out:
        if not isinstance(view, StreamView):
            raise TriggerError(f"{at}: features takes StreamViews (kawa.streaming), not {view!r}")
    _unique(at, "features", [v.name for v in out])
    return out


def _batch_views(at: str, views: Sequence[FeatureView]) -> list[FeatureView]:
    out = list(views)
    for view in out:
        if not isinstance(view, FeatureView):
            raise TriggerError(f"{at}: batch_features takes FeatureViews (kawa.features), not {view!r}")
        try:
            Field(view.entity.key)
        except StreamError:
            raise TriggerError(
                f"{at}: batch feature view {view.name!r} is keyed by the SQL {view.entity.key!r}; a trigger "
                "looks its values up by an event field such as keys.user_id, so key the view by one"
            ) from None
    _unique(at, "batch_features", [v.name for v in out])
    return out


def _unique(at: str, field: str, names: list[str]) -> None:
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise TriggerError(f"{at}: {field} names {doubled[0]!r} twice")


def _check_webhook(at: str, url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise TriggerError(f"{at}: webhook {url!r} must be an http:// or https:// URL")
    return url


def _check_emit(at: str, name: str | None, match: Match) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
        raise TriggerError(f"{at}: emit {name!r} must be an event name such as 'intent_scored'")
    if match.test({"event_name": name, "keys": {}}) or match.test({"event_name": name}):
        raise TriggerError(
            f"{at}: it would trigger on its own emitted {name!r} events forever; emit another event name"
        )
    return name
