"""The scale-out online store: namespaced bytes in Redis, shared by every kawa process and machine.

Chosen by `stores.online: redis://host:port/db` in kawa.yaml (options in `kawa.stores._redis`).

Layout: each namespace is two Redis keys,

    <prefix>:online:v:<namespace>   a hash, key -> value        (the reads: HGET, HMGET)
    <prefix>:online:k:<namespace>   a sorted set of the keys,   (the ordered scans: ZRANGEBYLEX)
                                    every score 0

Why two: the serving hot path reads point keys, and a hash answers `get` and `get_many` in one
command each (HMGET reads all of a batch atomically, from one snapshot). `scan(prefix, limit)` must
return keys in byte order, which a hash cannot give without reading the whole namespace and
sorting; a sorted set whose scores are all equal is ordered by the members' bytes (memcmp), which
is exactly the UTF-8 order the interface promises, so a prefix scan is one ZRANGEBYLEX range in
O(log n + m) and pages through big namespaces without KEYS or SCAN over the whole database. A
namespace being its own keys also makes `drop_namespace` two DELs. The price is the keys stored
twice and a ZADD with each write; reads never touch the index.

Atomicity: `put_many`, `delete`, `write` and `drop_namespace` are one MULTI/EXEC each, so a reader
sees a batch whole or not at all, and the AOF holds it whole or not at all. A scan reads pages of
keys with their values in a small Lua script (each page is consistent; pages are not one snapshot,
as with LMDB's chunked scans). Redis Cluster is not supported: a `write` spans many namespaces.

Durability: with `appendonly yes` and `appendfsync always` a write is on disk before Redis answers.
The store checks this at open and warns if not (its contents can be computed again); see
docs/backends.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Self

from kawa.stores._redis import Client, RedisSpec, connect, ensure_durable, parse_spec, unavailable
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

# Keys read per round trip of a scan; pairs per HSET/ZADD command within a batch.
SCAN_CHUNK = 1024
WRITE_CHUNK = 10_000

# One page of a scan: up to ARGV[3] keys of the index in [ARGV[1], ARGV[2]] and their values.
_PAGE = """
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #keys == 0 then return {{}, {}} end
return {keys, redis.call('HMGET', KEYS[2], unpack(keys))}
"""

_OP = "online store"


class RedisOnlineStore(OnlineStore):
    """Namespaced bytes in Redis (hash + sorted-set index per namespace); see the module docstring."""

    def __init__(self, client: Client, *, prefix: str = "kawa") -> None:
        self.client = client
        self.prefix = prefix
        self._values = f"{prefix}:online:v:".encode()
        self._index = f"{prefix}:online:k:".encode()
        self._page = client.register_script(_PAGE)

    @classmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        """`redis://host:port/db?prefix=kawa&durability=check`; `state_path` is not used."""
        parsed = parse_spec(spec, "online store")
        return cls.open(parsed)

    @classmethod
    @unavailable(_OP)
    def open(cls, spec: RedisSpec) -> Self:
        """Connect and check the server's durability (a warning if it may lose writes)."""
        client = connect(spec)
        ensure_durable(client, spec, "online store", strict=False)
        return cls(client, prefix=spec.prefix)

    # -- the interface ---------------------------------------------------------------------------

    @unavailable(_OP)
    def put_many(self, namespace: str, items: Items) -> None:
        pairs = encode_items(namespace, items)
        if not pairs:
            return
        skip = len(namespace_prefix(namespace))
        latest = {raw[skip:]: value for raw, value in pairs}  # the last of duplicate keys wins
        pipe = self.client.pipeline(transaction=True)
        self._put(pipe, namespace.encode(), latest)
        pipe.execute()

    @unavailable(_OP)
    def write(self, puts: Writes, deletes: Deletes | None = None) -> None:
        pairs, doomed = encode_writes(puts, deletes)
        if not pairs and not doomed:
            return
        # A stored key is namespace NUL key, and a namespace has no NUL: split at the first one.
        gone: dict[bytes, list[bytes]] = defaultdict(list)
        for raw in doomed:
            ns, key = raw.split(b"\x00", 1)
            gone[ns].append(key)
        put: dict[bytes, dict[bytes, bytes]] = defaultdict(dict)
        for raw, value in pairs:
            ns, key = raw.split(b"\x00", 1)
            put[ns][key] = value
        pipe = self.client.pipeline(transaction=True)
        for ns, keys in gone.items():  # deletes first, so a key in both ends up written
            for chunk in _chunks(keys):
                pipe.hdel(self._values + ns, *chunk)
                pipe.zrem(self._index + ns, *chunk)
        for ns, mapping in put.items():
            self._put(pipe, ns, mapping)
        pipe.execute()

    @unavailable(_OP)
    def get(self, namespace: str, key: str) -> bytes | None:
        ns = namespace.encode()
        field = encode_key(namespace, key)[len(ns) + 1 :]
        return self.client.hget(self._values + ns, field)

    @unavailable(_OP)
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            namespace_prefix(namespace)  # still refuse a bad namespace
            return []
        skip = len(namespace.encode()) + 1
        fields = [encode_key(namespace, key)[skip:] for key in keys]
        return self.client.hmget(self._values + namespace.encode(), fields)

    @unavailable(_OP)
    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        skip = len(namespace_prefix(namespace))
        fields = [encode_key(namespace, key)[skip:] for key in keys]
        if not fields:
            return 0
        ns = namespace.encode()
        pipe = self.client.pipeline(transaction=True)
        for chunk in _chunks(fields):
            pipe.hdel(self._values + ns, *chunk)
            pipe.zrem(self._index + ns, *chunk)
        counts = pipe.execute()
        return sum(counts[::2])

    def scan(self, namespace: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, not {limit}")
        namespace_prefix(namespace)
        return self._scan(namespace.encode(), prefix.encode(), limit)

    @unavailable(_OP)
    def drop_namespace(self, namespace: str) -> int:
        namespace_prefix(namespace)
        ns = namespace.encode()
        pipe = self.client.pipeline(transaction=True)
        pipe.hlen(self._values + ns)
        pipe.delete(self._values + ns, self._index + ns)
        count, _ = pipe.execute()
        return int(count)

    def close(self) -> None:
        self.client.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _put(self, pipe: Any, ns: bytes, mapping: dict[bytes, bytes]) -> None:
        """Queue the HSETs and ZADDs that store `mapping` in namespace `ns`."""
        items = iter(mapping.items())
        while chunk := dict(islice(items, WRITE_CHUNK)):
            pipe.hset(self._values + ns, mapping=chunk)
            pipe.zadd(self._index + ns, dict.fromkeys(chunk, 0))

    def _scan(self, ns: bytes, prefix: bytes, limit: int | None) -> Iterator[tuple[str, bytes]]:
        # UTF-8 never holds the byte 0xff, so every key starting with `prefix` sorts below prefix+0xff.
        low, high = (b"[" + prefix, b"(" + prefix + b"\xff") if prefix else (b"-", b"+")
        remaining = limit
        keys = [self._index + ns, self._values + ns]
        while remaining is None or remaining > 0:
            want = SCAN_CHUNK if remaining is None else min(SCAN_CHUNK, remaining)
            names, values = self._read_page(keys, low, high, want)
            for name, value in zip(names, values, strict=True):
                if value is None:  # removed between the index and the hash: not there any more
                    continue
                yield name.decode(), value
                if remaining is not None:
                    remaining -= 1
            if len(names) < want:
                return
            low = b"(" + names[-1]

    @unavailable(_OP)
    def _read_page(
        self, keys: list[bytes], low: bytes, high: bytes, want: int
    ) -> tuple[list[bytes], list[bytes | None]]:
        names, values = self._page(keys=keys, args=[low, high, want])
        return names, values


def _chunks(keys: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(keys), WRITE_CHUNK):
        yield keys[start : start + WRITE_CHUNK]
