"""Entities: what a feature describes (a user, a visitor, a session, an item) and how events name it."""

from __future__ import annotations

import re

from kawa.features.errors import FeatureError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(kind: str, name: str) -> str:
    """`name` if it is a lowercase SQL identifier, else a FeatureError saying what to write instead."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise FeatureError(
            f"{kind} name {name!r} is not allowed; use lowercase letters, digits and '_', "
            "starting with a letter or '_'"
        )
    return name


class Entity:
    """A name, the SQL expression of its key over `events`, and the column that holds it in label rows.

    >>> Entity("user", "keys.user_id").column
    'user_id'
    """

    __slots__ = ("column", "key", "name")

    def __init__(self, name: str, key: str, *, column: str | None = None) -> None:
        self.name = check_identifier("entity", name)
        if not key.strip():
            raise FeatureError(f"entity {name!r} needs the SQL of its key over events, e.g. keys.user_id")
        self.key = key
        self.column = check_identifier("entity column", column or f"{name}_id")

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, {self.key!r}, column={self.column!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and (self.name, self.key, self.column) == (
            other.name,
            other.key,
            other.column,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.key, self.column))


USER = Entity("user", "keys.user_id")
VISITOR = Entity("visitor", "keys.visitor_id")
SESSION = Entity("session", "keys.session_id")
ITEM = Entity("item", "item_id")

ENTITIES = {e.name: e for e in (USER, VISITOR, SESSION, ITEM)}


def entity_named(name: str) -> Entity:
    """The built-in entity called `name` (user, visitor, session, item)."""
    try:
        return ENTITIES[name]
    except KeyError:
        known = ", ".join(ENTITIES)
        raise FeatureError(
            f"unknown entity {name!r}; use one of: {known}, or define one with Entity(name, key_sql)"
        ) from None
