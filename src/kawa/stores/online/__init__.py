"""The online store interface and its backends, chosen by `stores.online` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from kawa.stores._backends import load_backend
from kawa.stores.online.base import MAX_KEY_BYTES, Items, OnlineStore

# name (or URL scheme) -> (module, class, extra that installs its dependencies)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "lmdb": ("kawa.stores.online.lmdb", "LmdbOnlineStore", None),
    "memory": ("kawa.stores.online.memory", "MemoryOnlineStore", None),
    "redis": ("kawa.stores.online.redis", "RedisOnlineStore", "redis"),
    "rediss": ("kawa.stores.online.redis", "RedisOnlineStore", "redis"),
}


def open_online_store(spec: str, state_path: Path) -> OnlineStore:
    """The online store named by `spec` (`lmdb`, `memory`, `redis://...`), under `state_path` if embedded.

    >>> store = open_online_store("memory", Path("."))
    >>> store.put_many("predictions:loyalty", {"user_B": b"0.87"})
    >>> store.get("predictions:loyalty", "user_B")
    b'0.87'
    """
    cls = load_backend("online store", spec, BACKENDS)
    return cls.from_spec(spec, state_path)  # type: ignore[no-any-return]


__all__ = ["BACKENDS", "MAX_KEY_BYTES", "Items", "OnlineStore", "open_online_store"]
