"""Stream views: named sets of streaming features about one entity, computed online and offline alike."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from kawa.features.entity import Entity, check_identifier
from kawa.features.errors import FeatureError
from kawa.streaming.errors import StreamError
from kawa.streaming.fields import BIGINT, DOUBLE, Field
from kawa.streaming.spec import StreamFeature


class StreamView:
    """Streaming features keyed by a field of the event (a dotted path, or an Entity such as SESSION).

    >>> from kawa.streaming import stream
    >>> view = StreamView("activity", key="keys.session_id", features={"views_5m": stream.count(window="5m")})
    >>> view.column, view.key_of({"keys": {"session_id": "s_1"}}), view.key_of({"keys": {}})
    ('session_id', 's_1', None)
    """

    __kawa_kind__ = "stream_view"

    def __init__(
        self,
        name: str,
        key: str | Entity,
        features: Mapping[str, StreamFeature],
        *,
        column: str | None = None,
        description: str = "",
    ) -> None:
        try:
            self.name = check_identifier("stream view", name)
        except FeatureError as exc:
            raise StreamError(str(exc)) from None
        at = f"stream view {name!r}"
        self.entity = key if isinstance(key, Entity) else None
        path = key.key if isinstance(key, Entity) else key
        self.key_field = Field(path, where=f"{at}: key")
        if self.key_field.kind in (DOUBLE, BIGINT):
            raise StreamError(
                f"{at}: key {path!r} is a number column; key by a text field such as keys.user_id"
            )
        self.key = path
        default = self.entity.column if self.entity is not None else self.key_field.parts[-1]
        try:
            self.column = check_identifier(f"{at}: key column", column or default)
        except FeatureError as exc:
            raise StreamError(f"{exc}; pass column= to name it") from None
        self.description = description
        if not isinstance(features, Mapping) or not features:
            raise StreamError(
                f"{at} has no features; give a mapping of name to stream.count(...) and the like"
            )
        self.features: dict[str, StreamFeature] = {}
        for fname, feature in features.items():
            try:
                check_identifier(f"{at}: feature", fname)
            except FeatureError as exc:
                raise StreamError(str(exc)) from None
            if fname == self.column or fname.startswith("__"):
                raise StreamError(f"{at}: feature name {fname!r} is taken by the key column; rename it")
            if not isinstance(feature, StreamFeature):
                raise StreamError(
                    f"{at}: feature {fname!r} must be a StreamFeature (see kawa.streaming.stream), "
                    f"not {type(feature).__name__}"
                )
            self.features[fname] = feature
        self.key_of = self.key_field.value
        windows = [f.window_us for f in self.features.values() if f.window_us is not None]
        self.horizon_us: int | None = max(windows) if windows else None
        body = repr((self.key, [(n, f.to_dict()) for n, f in self.features.items()])).encode()
        self.fingerprint = hashlib.blake2b(body, digest_size=8).hexdigest()

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def to_dict(self) -> dict[str, Any]:
        """The view as plain data (what `from_mapping` reads)."""
        out: dict[str, Any] = {"key": self.key, "column": self.column}
        if self.description:
            out["description"] = self.description
        out["features"] = {n: f.to_dict() for n, f in self.features.items()}
        return out

    @classmethod
    def from_mapping(cls, name: str, raw: Mapping[str, Any]) -> StreamView:
        """A view from plain data (parsed YAML): {key, column, description, features: {name: {agg, ...}}}."""
        at = f"stream view {name!r}"
        if not isinstance(raw, Mapping) or "key" not in raw or "features" not in raw:
            raise StreamError(f"{at}: expected a mapping with key and features")
        unknown = sorted(set(raw) - {"key", "column", "description", "features"})
        if unknown:
            raise StreamError(f"{at}: unknown key {unknown[0]!r}; use key, column, description, features")
        body = raw["features"]
        if not isinstance(body, Mapping):
            raise StreamError(f"{at}: features must be a mapping of name to {{agg, expr, where, window, n}}")
        features = {}
        for fname, spec in body.items():
            try:
                features[str(fname)] = StreamFeature.from_mapping(spec)
            except StreamError as exc:
                raise StreamError(f"{at}: feature {fname!r}: {exc}") from None
        return cls(
            name,
            str(raw["key"]),
            features,
            column=raw.get("column"),
            description=str(raw.get("description") or ""),
        )

    def __repr__(self) -> str:
        return f"StreamView({self.name!r}, key={self.key!r}, {len(self.features)} features)"
