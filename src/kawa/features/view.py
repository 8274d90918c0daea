"""Feature views: named sets of features keyed by an entity, written as a Python/YAML spec or as SQL.

Both forms are SQL over two relations, `events` and `cutoffs` (the entity column and a `cutoff`
timestamp per row), and return one row per (entity, cutoff) with the features as columns. A spec
compiles to a query that only reads events strictly before each cutoff. Raw SQL must do the same
itself: join events with `e.sync_date < c.cutoff`, never `<=`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kawa.features._compile import DAY_US, compile_view
from kawa.features.entity import Entity, check_identifier, entity_named
from kawa.features.errors import FeatureError
from kawa.features.spec import Feature, features_from_mapping

RESERVED = frozenset({"cutoff", "label"})


class FeatureView:
    """A named set of features about one entity; give `features` (a spec) or `sql`, not both.

    >>> from kawa.features import agg
    >>> from kawa.features.entity import USER
    >>> buys = agg.count(where="event_name = 'purchase'", window="30d")
    >>> view = FeatureView("buyers", USER, {"purchases_30d": buys})
    >>> view.feature_names
    ['purchases_30d']
    """

    __kawa_kind__ = "feature_view"

    def __init__(
        self,
        name: str,
        entity: Entity,
        features: Mapping[str, Feature] | None = None,
        *,
        sql: str | None = None,
        description: str = "",
    ) -> None:
        self.name = check_identifier("feature view", name)
        if not isinstance(entity, Entity):
            raise FeatureError(f"feature view {name!r}: entity must be an Entity, e.g. kawa.features.USER")
        self.entity = entity
        self.description = description
        if (features is None) == (sql is None):
            raise FeatureError(f"feature view {name!r}: give either features (a spec) or sql, not both")
        self.sql_text = sql
        self.features: dict[str, Feature] = {}
        if features is not None:
            if not features:
                raise FeatureError(f"feature view {name!r} has no features")
            for fname, feature in features.items():
                check_identifier(f"feature view {name!r}: feature", fname)
                if fname in RESERVED or fname == entity.column:
                    raise FeatureError(
                        f"feature view {name!r}: feature name {fname!r} is taken by the label rows; "
                        "rename the feature"
                    )
                if not isinstance(feature, Feature):
                    raise FeatureError(
                        f"feature view {name!r}: feature {fname!r} must be a Feature (see kawa.features.agg)"
                    )
                self.features[fname] = feature.check(fname)
        elif not sql or not sql.strip():
            raise FeatureError(f"feature view {name!r}: sql is empty")

    def __repr__(self) -> str:
        what = f"{len(self.features)} features" if self.features else "sql"
        return f"FeatureView({self.name!r}, entity={self.entity.name!r}, {what})"

    @property
    def is_spec(self) -> bool:
        return self.sql_text is None

    @property
    def feature_names(self) -> list[str] | None:
        """The features' names; None for a SQL view, whose columns are known only when it runs."""
        return list(self.features) if self.is_spec else None

    @property
    def lookback_days(self) -> int | None:
        """How far before a cutoff events matter, or None when a feature looks at all history."""
        if not self.is_spec:
            return None
        days = [f.window_days for f in self.features.values()]
        if any(d is None for d in days):
            return None
        return max(d for d in days if d is not None)

    def sql(
        self,
        *,
        origin_us: int = 0,
        until_us: int | None = None,
        since_us: int | None = None,
        row_id: str | None = None,
        edges: bool = True,
        cutoff_buckets: Iterable[tuple[int, bool]] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> str:
        """The view's SQL over `cutoffs` and `events` (a spec is compiled; bounds only prune events).

        `cutoff_buckets` and `shard` are the compiler's (`kawa.features._compile.compile_view`).
        """
        if self.sql_text is not None:
            return self.sql_text
        return compile_view(
            self.entity,
            self.features,
            origin_us=origin_us,
            until_us=until_us,
            since_us=since_us,
            row_id=row_id,
            edges=edges,
            cutoff_buckets=cutoff_buckets,
            shard=shard,
        )

    def sql_for(
        self,
        first_us: int,
        last_us: int,
        origin_us: int,
        *,
        aligned: bool = False,
        row_id: str | None = None,
        cutoff_buckets: Iterable[tuple[int, bool]] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> str:
        """The SQL for cutoffs between `first_us` and `last_us`, reading only the events they can see.

        `aligned` says every cutoff's time of day is `origin_us`'s, so no partial day is read.
        """
        lookback = self.lookback_days
        since = None if lookback is None else first_us - lookback * DAY_US
        return self.sql(
            origin_us=origin_us,
            until_us=last_us,
            since_us=since,
            row_id=row_id,
            edges=not aligned,
            cutoff_buckets=cutoff_buckets,
            shard=shard,
        )

    # -- other forms -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureView:
        """A view from plain data: {name, entity (a built-in name or {name, key, column}), features|sql}."""
        unknown = set(data) - {"name", "entity", "features", "sql", "description"}
        if unknown:
            raise FeatureError(
                f"feature view: unknown fields {sorted(unknown)}; use name, entity, features, sql"
            )
        name = data.get("name")
        if not isinstance(name, str):
            raise FeatureError("feature view: give it a name")
        raw_entity = data.get("entity", "user")
        if isinstance(raw_entity, str):
            entity = entity_named(raw_entity)
        elif isinstance(raw_entity, Mapping) and "name" in raw_entity and "key" in raw_entity:
            entity = Entity(str(raw_entity["name"]), str(raw_entity["key"]), column=raw_entity.get("column"))
        else:
            raise FeatureError(f"feature view {name!r}: entity must be a name or {{name, key, column}}")
        features = data.get("features")
        if features is not None and not isinstance(features, Mapping):
            raise FeatureError(f"feature view {name!r}: features must be a mapping of name -> spec")
        return cls(
            name,
            entity,
            features_from_mapping(features) if features is not None else None,
            sql=data.get("sql"),
            description=str(data.get("description", "")),
        )

    @classmethod
    def from_yaml(cls, source: str | Path) -> FeatureView:
        """A view from YAML text or a .yaml file; the same fields as `from_dict`.

        >>> FeatureView.from_yaml('''
        ... name: carts
        ... entity: user
        ... features:
        ...   cart_adds_7d: {agg: count, where: "event_name = 'cart_add'", window: 7d}
        ... ''').feature_names
        ['cart_adds_7d']
        """
        text = Path(source).read_text() if isinstance(source, Path) else source
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FeatureError(f"feature view YAML is not valid: {exc}") from None
        if not isinstance(data, Mapping):
            raise FeatureError("feature view YAML must be a mapping with name, entity and features")
        return cls.from_dict(data)
