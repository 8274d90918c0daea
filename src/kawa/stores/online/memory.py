"""An online store in a dict: for tests and throwaway demos; nothing survives the process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

from kawa.stores.online.base import (
    Deletes,
    Items,
    OnlineStore,
    Writes,
    encode_items,
    encode_key,
    encode_writes,
    namespace_prefix,
)


class MemoryOnlineStore(OnlineStore):
    """Keys are kept in their stored form (namespace, NUL, key), so limits and order match LMDB's."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        return cls()

    def put_many(self, namespace: str, items: Items) -> None:
        pairs = encode_items(namespace, items)
        with self._lock:
            self._data.update(pairs)

    def write(self, puts: Writes, deletes: Deletes | None = None) -> None:
        pairs, doomed = encode_writes(puts, deletes)
        with self._lock:
            for k in doomed:
                self._data.pop(k, None)
            self._data.update(pairs)

    def get(self, namespace: str, key: str) -> bytes | None:
        return self._data.get(encode_key(namespace, key))

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        raw = [encode_key(namespace, key) for key in keys]
        with self._lock:
            return [self._data.get(k) for k in raw]

    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        raw = [encode_key(namespace, key) for key in keys]
        with self._lock:
            return sum(self._data.pop(k, None) is not None for k in raw)

    def scan(self, namespace: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, not {limit}")
        ns = namespace_prefix(namespace)
        start = ns + prefix.encode()
        with self._lock:
            found = sorted((k, v) for k, v in self._data.items() if k.startswith(start))
        return ((k[len(ns) :].decode(), v) for k, v in found[:limit])

    def drop_namespace(self, namespace: str) -> int:
        ns = namespace_prefix(namespace)
        with self._lock:
            doomed = [k for k in self._data if k.startswith(ns)]
            for k in doomed:
                del self._data[k]
        return len(doomed)
