"""The online store: namespaced key-value pairs (features, predictions) read on the serving hot path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import msgspec

# LMDB's default key limit; every backend keeps to it so data moves between backends unchanged.
MAX_KEY_BYTES = 511

Items = Mapping[str, bytes] | Iterable[tuple[str, bytes]]
# What one atomic `write` puts and deletes, by namespace.
Writes = Mapping[str, Items]
Deletes = Mapping[str, Iterable[str]]


class OnlineStore(ABC):
    """Bytes by (namespace, key), e.g. ("features:user", "user_B") or ("predictions:loyalty", "user_B").

    A namespace is a non-empty string without NUL; a key is a non-empty string; together they take at
    most `MAX_KEY_BYTES` bytes of UTF-8. Keys within a namespace sort by their UTF-8 bytes, which is
    the order Python sorts strings in. Callers encode values themselves (msgspec), or use the JSON
    helpers for plain dicts.
    """

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        """The store named by `spec` in kawa.yaml, kept under `state_path` if it is embedded."""

    @abstractmethod
    def put_many(self, namespace: str, items: Items) -> None:
        """Write all `items` in one atomic batch, replacing existing values."""

    @abstractmethod
    def write(self, puts: Writes, deletes: Deletes | None = None) -> None:
        """Remove `deletes` and write `puts`, over any namespaces, in one atomic batch: all or nothing.

        Deletes apply before puts, so a key in both ends up written. Every key and value is checked
        before anything is written. A reader never sees part of a batch, and a crash leaves the whole
        batch or none of it.
        """

    @abstractmethod
    def get(self, namespace: str, key: str) -> bytes | None:
        """The value of `key`, or None if it is not stored."""

    @abstractmethod
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys` in the same order, None where missing, read from one snapshot."""

    @abstractmethod
    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        """Remove `keys` in one batch; returns how many were stored."""

    @abstractmethod
    def scan(self, namespace: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Pairs whose key starts with `prefix`, in key order, at most `limit` of them."""

    @abstractmethod
    def drop_namespace(self, namespace: str) -> int:
        """Remove every key of `namespace`; returns how many there were."""

    def put_json(self, namespace: str, items: Mapping[str, dict[str, Any]]) -> None:
        """Write JSON-able dicts, encoded as JSON."""
        self.put_many(namespace, ((key, _json_encoder.encode(value)) for key, value in items.items()))

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """A dict written by `put_json`, or None if `key` is not stored."""
        raw = self.get(namespace, key)
        return None if raw is None else _json_decoder.decode(raw)

    def sync(self) -> None:  # noqa: B027 - a no-op where every commit is durable already
        """Make every write committed so far durable (for stores opened to commit without fsync)."""

    def close(self) -> None:  # noqa: B027 - optional for backends with nothing to release
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_key(namespace: str, key: str) -> bytes:
    """The stored form of (namespace, key): the namespace, a NUL, the key; refused if it breaks the rules."""
    if not key:
        raise ValueError(f"keys in namespace {namespace!r} must be non-empty strings")
    raw = namespace_prefix(namespace) + key.encode()
    if len(raw) > MAX_KEY_BYTES:
        raise ValueError(
            f"key {key[:40]!r}... in namespace {namespace!r} takes {len(raw)} bytes with its namespace; "
            f"the limit is {MAX_KEY_BYTES}: hash long keys (e.g. hashlib.blake2b) before storing them"
        )
    return raw


def encode_items(namespace: str, items: Items) -> list[tuple[bytes, bytes]]:
    """`items` as stored pairs, all checked before anything is written so a bad item fails the batch."""
    pairs = items.items() if isinstance(items, Mapping) else items
    out: list[tuple[bytes, bytes]] = []
    for key, value in pairs:
        if not isinstance(value, bytes):
            raise TypeError(
                f"the value of {key!r} in namespace {namespace!r} is {type(value).__name__}; the online "
                "store keeps bytes: encode it first (msgspec.json.encode) or use put_json"
            )
        out.append((encode_key(namespace, key), value))
    return out


def encode_writes(puts: Writes, deletes: Deletes | None) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """The stored pairs to put and keys to delete of one atomic `write`, all checked first."""
    pairs = [pair for namespace, items in puts.items() for pair in encode_items(namespace, items)]
    doomed = [encode_key(namespace, key) for namespace, keys in (deletes or {}).items() for key in keys]
    return pairs, doomed


def namespace_prefix(namespace: str) -> bytes:
    """The stored prefix shared by every key of `namespace`."""
    if not namespace or "\x00" in namespace:
        raise ValueError(f"namespace {namespace!r} must be a non-empty string without NUL characters")
    return namespace.encode() + b"\x00"
