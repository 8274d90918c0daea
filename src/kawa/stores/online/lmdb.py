"""The embedded online store: one LMDB environment in a folder, read by many processes at once.

Layout: `<state>/online/data.mdb` (the B+tree) and `lock.mdb` (LMDB's reader table and writer lock).

Namespaces are key prefixes (namespace, NUL, key) in LMDB's one main database rather than named
sub-databases: named databases must be counted up front (`max_dbs`), are created and dropped only in
write transactions, and each reader process would have to reopen their handles after another process
creates or drops one (using a dropped handle is undefined behaviour in LMDB). A prefix makes namespaces
unlimited and free to create, and a namespace scan is still one cursor range.

Durability: with `sync=True` (the default) a commit returns only after LMDB has fsynced the data and
the meta page, so a `put_many` that returned survives power loss. With `metasync=False` a commit
fsyncs the data but not the meta page (one fsync instead of two): a power cut may undo the last
commit, never corrupt the environment, and the next commit's fsync makes the one before it durable.
With `sync=False` writes are much faster and a killed process still loses nothing committed (the
pages are in the OS cache), but an OS crash or power cut can lose the last commits or corrupt the
environment: use it only for data that can be rebuilt (materialise the features again), and call
`sync()` now and then to bound what a crash of the machine can take. The flags
belong to a process's handle, so processes that share the environment may choose differently; in
kawa.yaml they are URL options: `stores.online: "lmdb://?metasync=false"`.

Concurrency: readers in any number of threads and processes read MVCC snapshots without locks and
never wait for a writer; LMDB's own lock file serialises write transactions across processes, so one
writer commits at a time and others wait their turn. Do not use a store across `fork()`; open it in
the child.

Growth: LMDB maps the file up to `map_size` bytes of address space (free on 64-bit; disk grows only
with the data). A write past it fails with MapFullError, so the store doubles the map and retries the
batch; a process whose map is smaller than what another process grew the file to gets
MapResizedError and adopts the new size. LMDB may change the map only while no transaction of this
process is open, so every transaction passes through a gate that a resize closes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Self, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import lmdb

from kawa.observe.metrics import store_error
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

T = TypeVar("T")
A = TypeVar("A")


def _count_fork() -> None:
    global _forks
    _forks += 1


# Bumped in a forked child, so a store can refuse use across fork() without a getpid() per read.
_forks = 0
os.register_at_fork(after_in_child=_count_fork)

# Pairs read per transaction in a scan, so a long scan never pins an old snapshot (which would stop
# LMDB from reusing freed pages and make the file grow).
SCAN_CHUNK = 1024


class LmdbOnlineStore(OnlineStore):
    """Namespaced bytes in an LMDB environment at `path`; see the module docstring for the guarantees."""

    def __init__(
        self,
        path: str | Path,
        *,
        map_size: int = 1 << 30,
        sync: bool = True,
        metasync: bool | None = None,
        max_readers: int = 512,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(
            str(self.path),
            map_size=map_size,
            subdir=True,
            sync=sync,
            metasync=sync if metasync is None else metasync and sync,
            readahead=False,  # reads are random point lookups; readahead only evicts useful pages
            max_readers=max_readers,
            max_dbs=0,
            lock=True,
        )
        # Free reader slots left behind by killed processes so they do not hold old pages forever.
        self._env.reader_check()
        self._gate = _Gate()
        self._write_lock = threading.Lock()
        self._forks_at_open = _forks

    @classmethod
    def from_spec(cls, spec: str, state_path: Path) -> Self:
        """`lmdb`, or `lmdb://?sync=false&metasync=false` to set the durability flags of this handle."""
        return cls(state_path / "online", **_spec_options(spec))

    @property
    def map_size(self) -> int:
        """The bytes of address space LMDB maps now; grows by itself as data is written."""
        return int(self._env.info()["map_size"])

    # -- the interface ---------------------------------------------------------------------------

    def put_many(self, namespace: str, items: Items) -> None:
        pairs = encode_items(namespace, items)
        if not pairs:
            return
        # Sorted keys touch each page once; the stable sort keeps the last of duplicate keys last.
        pairs.sort(key=itemgetter(0))
        self._write(lambda txn: txn.cursor().putmulti(pairs))

    def write(self, puts: Writes, deletes: Deletes | None = None) -> None:
        pairs, doomed = encode_writes(puts, deletes)
        if not pairs and not doomed:
            return
        pairs.sort(key=itemgetter(0))
        self._write(partial(_put_and_delete, pairs=pairs, doomed=doomed))

    def get(self, namespace: str, key: str) -> bytes | None:
        raw = encode_key(namespace, key)
        return self._read(_get_one, raw)

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        raw = [encode_key(namespace, key) for key in keys]
        return self._read(_get_all, raw)

    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        raw = [encode_key(namespace, key) for key in keys]
        if not raw:
            return 0
        return self._write(lambda txn: sum(txn.delete(k) for k in raw))

    def scan(self, namespace: str, prefix: str = "", limit: int | None = None) -> Iterator[tuple[str, bytes]]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, not {limit}")
        ns = namespace_prefix(namespace)
        return self._scan(len(ns), ns + prefix.encode(), limit)

    def drop_namespace(self, namespace: str) -> int:
        return self._write(partial(_drop_prefix, prefix=namespace_prefix(namespace)))

    def sync(self) -> None:
        self._check_fork()
        ident = self._gate.enter()
        try:
            self._env.sync(True)
        finally:
            self._gate.leave(ident)

    def close(self) -> None:
        self._gate.exclusive(self._env.close)

    # -- transactions ----------------------------------------------------------------------------

    def _read(self, fn: Callable[[lmdb.Transaction, A], T], arg: A) -> T:
        """`fn(txn, arg)` in a read transaction; `arg` rather than a closure saves a microsecond."""
        self._check_fork()
        while True:
            ident = self._gate.enter()
            try:
                with self._env.begin() as txn:
                    return fn(txn, arg)
            except lmdb.MapResizedError:
                pass  # another process grew the file past our map; adopt its size below
            finally:
                self._gate.leave(ident)
            self._gate.exclusive(partial(self._env.set_mapsize, 0))

    def _write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        self._check_fork()
        # One writer thread at a time: LMDB allows one write transaction anyway, and a thread queued
        # inside LMDB's writer lock would hold the gate open while a failed batch waits to resize.
        with self._write_lock:
            while True:
                grow_to = 0  # 0 asks LMDB to adopt the size another process grew the file to
                failed: lmdb.Transaction | None = None
                ident = self._gate.enter()
                try:
                    txn = self._env.begin(write=True)
                    try:
                        result = fn(txn)
                        txn.commit()
                        return result
                    except (lmdb.MapFullError, lmdb.MapResizedError):
                        failed = txn
                        raise
                    except BaseException as exc:
                        txn.abort()
                        if isinstance(exc, lmdb.Error):
                            store_error("online")
                        raise
                except lmdb.MapResizedError:
                    pass
                except lmdb.MapFullError:
                    grow_to = self.map_size * 2
                finally:
                    self._gate.leave(ident)
                # The failed transaction is aborted behind the closed gate too: py-lmdb 3 makes an
                # abort wait until no other thread is inside an LMDB call, which busy readers
                # could otherwise put off for seconds.
                self._gate.exclusive(partial(self._abort_and_grow, failed, grow_to))

    def _abort_and_grow(self, failed: lmdb.Transaction | None, size: int) -> None:
        if failed is not None:
            failed.abort()
        self._grow(size)

    def _grow(self, size: int) -> None:
        # Another thread may have grown the map while this one waited at the gate.
        if size == 0 or self.map_size < size:
            self._env.set_mapsize(size)

    def _scan(self, skip: int, start: bytes, limit: int | None) -> Iterator[tuple[str, bytes]]:
        after: bytes | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            want = SCAN_CHUNK if remaining is None else min(SCAN_CHUNK, remaining)
            chunk = self._read(_range, (start, after, want))
            for key, value in chunk:
                yield key[skip:].decode(), value
            if len(chunk) < want:
                return
            after = chunk[-1][0]
            if remaining is not None:
                remaining -= len(chunk)

    def _check_fork(self) -> None:
        if _forks != self._forks_at_open:
            raise RuntimeError(
                f"the LMDB online store at {self.path} was opened before a fork; "
                "open it again in the child process"
            )


def _spec_options(spec: str) -> dict[str, bool]:
    """The flags in the query of an `lmdb://?...` spec; ValueError naming an unknown or bad one."""
    options: dict[str, bool] = {}
    query = urlsplit(spec).query if "://" in spec else ""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in ("sync", "metasync"):
            raise ValueError(f"unknown LMDB option {name!r} in {spec!r}; use sync or metasync")
        if value.lower() not in _BOOLS:
            raise ValueError(f"LMDB option {name}={value!r} in {spec!r} must be true or false")
        options[name] = _BOOLS[value.lower()]
    return options


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _get_one(txn: lmdb.Transaction, key: bytes) -> bytes | None:
    # Without buffers=True on the transaction, LMDB hands out bytes, never memoryviews.
    return txn.get(key)  # type: ignore[return-value]


def _get_all(txn: lmdb.Transaction, keys: list[bytes]) -> list[bytes | None]:
    return [txn.get(key) for key in keys]  # type: ignore[misc]


def _range(txn: lmdb.Transaction, query: tuple[bytes, bytes | None, int]) -> list[tuple[bytes, bytes]]:
    """Up to `count` pairs whose key starts with `start`, beginning after the key `after`."""
    start, after, count = query
    cursor = txn.cursor()
    if not cursor.set_range(start if after is None else after):
        return []
    out: list[tuple[bytes, bytes]] = []
    for key, value in cast(Iterator[tuple[bytes, bytes]], cursor.iternext()):
        if key == after:
            continue
        if not key.startswith(start):
            break
        out.append((key, value))
        if len(out) == count:
            break
    return out


def _put_and_delete(txn: lmdb.Transaction, *, pairs: list[tuple[bytes, bytes]], doomed: list[bytes]) -> None:
    for key in doomed:
        txn.delete(key)
    if pairs:
        txn.cursor().putmulti(pairs)


def _drop_prefix(txn: lmdb.Transaction, *, prefix: bytes) -> int:
    """Delete every key starting with `prefix`; returns how many."""
    cursor = txn.cursor()
    count = 0
    if cursor.set_range(prefix):
        # delete() moves the cursor to the next key; past the end, key() is b"" and the loop stops.
        while cast(bytes, cursor.key()).startswith(prefix):
            cursor.delete()
            count += 1
    return count


class _Gate:
    """Lets transactions run side by side without a lock, and a resize or close only when none is open.

    A transaction adds its thread to `_inside` and then checks `_shut`; a resize sets `_shut` and
    then waits for `_inside` to empty. Under the GIL each step is atomic and ordered, so one side
    always sees the other (Dekker's handshake). The read path takes no lock, so busy readers can
    neither slow each other down nor starve a resize, as they would queueing on one shared lock.
    """

    def __init__(self) -> None:
        self._inside: set[int] = set()
        self._shut = False
        self._open = threading.Event()
        self._open.set()
        self._resizing = threading.Lock()

    def enter(self) -> int:
        ident = threading.get_ident()
        while True:
            self._inside.add(ident)
            if not self._shut:
                return ident
            self._inside.discard(ident)
            self._open.wait()

    def leave(self, ident: int) -> None:
        self._inside.discard(ident)

    def exclusive(self, fn: Callable[[], object]) -> None:
        with self._resizing:
            self._open.clear()
            self._shut = True
            try:
                while self._inside:
                    time.sleep(0.0001)  # open transactions take microseconds to finish
                fn()
            finally:
                self._shut = False
                self._open.set()
