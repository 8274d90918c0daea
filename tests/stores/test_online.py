"""Contract tests for every online store backend, and LMDB's multi-process and growth behaviour."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kawa.stores._backends import BackendError
from kawa.stores.online import MAX_KEY_BYTES, OnlineStore, open_online_store
from kawa.stores.online.lmdb import SCAN_CHUNK, LmdbOnlineStore
from kawa.stores.online.memory import MemoryOnlineStore

pytest_plugins = ["tests.services.redis"]

SMALL_MAP = 256 * 1024


def _lmdb(tmp_path: Path, request: pytest.FixtureRequest) -> OnlineStore:
    # A small map, so ordinary tests also cross LMDB's growth path now and then.
    return LmdbOnlineStore(tmp_path / "online", map_size=SMALL_MAP)


def _memory(tmp_path: Path, request: pytest.FixtureRequest) -> OnlineStore:
    return MemoryOnlineStore()


def _redis(tmp_path: Path, request: pytest.FixtureRequest) -> OnlineStore:
    # A real redis-server of this module, emptied for each test (skips loudly where there is none).
    return open_online_store(request.getfixturevalue("redis_url"), tmp_path)


IMPLEMENTATIONS = [_lmdb, _memory, _redis]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda f: f.__name__.strip("_"))
def store(request: pytest.FixtureRequest, tmp_path: Path):
    with request.param(tmp_path, request) as store:
        yield store


def test_values_round_trip_byte_for_byte(store: OnlineStore) -> None:
    values = {"user_B": b"0.87", "empty": b"", "binary": bytes(range(256)), "user_\u00e9": b"\x00\xff"}
    store.put_many("predictions:loyalty", values)
    for key, value in values.items():
        assert store.get("predictions:loyalty", key) == value


def test_missing_keys_read_as_none(store: OnlineStore) -> None:
    assert store.get("features:user", "nobody") is None
    store.put_many("features:user", [("a", b"1"), ("c", b"3")])
    assert store.get_many("features:user", ["c", "b", "a", "c"]) == [b"3", None, b"1", b"3"]
    assert store.get_many("features:user", []) == []
    assert store.get("features:other", "a") is None


def test_put_many_takes_pairs_and_generators_and_replaces(store: OnlineStore) -> None:
    store.put_many("ns", ((f"k{i}", str(i).encode()) for i in range(5)))
    store.put_many("ns", [("k1", b"new"), ("k9", b"9")])
    store.put_many("ns", [("dup", b"first"), ("dup", b"second")])  # the last of a batch wins
    assert store.get_many("ns", ["k0", "k1", "k4", "k9", "dup"]) == [b"0", b"new", b"4", b"9", b"second"]
    store.put_many("ns", {})  # an empty batch is fine
    assert store.get("ns", "k0") == b"0"


def test_namespaces_are_isolated(store: OnlineStore) -> None:
    store.put_many("a", {"b": b"in a", "x": b"ax"})
    store.put_many("ab", {"b": b"in ab"})
    store.put_many("a:b", {"b": b"in a:b"})
    assert store.get("a", "b") == b"in a"
    assert store.get("ab", "b") == b"in ab"
    assert [k for k, _ in store.scan("a")] == ["b", "x"]
    assert store.drop_namespace("a") == 2
    assert store.get("a", "b") is None
    assert store.get("ab", "b") == b"in ab"
    assert store.get("a:b", "b") == b"in a:b"
    assert store.drop_namespace("a") == 0


def test_scan_is_in_key_order_with_prefix_and_limit(store: OnlineStore) -> None:
    keys = ["user:10", "user:2", "user:1", "item:1", "User:9", "user:\u00e9", "user:z", "userx"]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    store.put_many("ns", [(k, k.encode()) for k in shuffled])
    store.put_many("other", {"user:0": b"not mine"})
    assert [k for k, _ in store.scan("ns")] == sorted(keys)
    assert list(store.scan("ns", "user:")) == [(k, k.encode()) for k in sorted(keys) if k.startswith("user:")]
    assert [k for k, _ in store.scan("ns", "user:", limit=2)] == ["user:1", "user:10"]
    assert list(store.scan("ns", limit=0)) == []
    assert list(store.scan("ns", "nothing")) == []
    assert list(store.scan("empty")) == []
    with pytest.raises(ValueError, match="limit"):
        store.scan("ns", limit=-1)


def test_scan_walks_past_many_keys(store: OnlineStore) -> None:
    n = SCAN_CHUNK * 2 + 7
    store.put_many("big", [(f"{i:06d}", str(i).encode()) for i in range(n)])
    got = list(store.scan("big"))
    assert [int(v) for _, v in got] == list(range(n))
    assert [k for k, _ in store.scan("big", limit=SCAN_CHUNK + 1)][-2:] == [
        f"{SCAN_CHUNK - 1:06d}",
        f"{SCAN_CHUNK:06d}",
    ]
    assert len(list(store.scan("big", "000"))) == 1000


def test_delete_counts_what_was_there(store: OnlineStore) -> None:
    store.put_many("ns", {"a": b"1", "b": b"2", "c": b"3"})
    assert store.delete("ns", ["a", "c", "missing"]) == 2
    assert store.get_many("ns", ["a", "b", "c"]) == [None, b"2", None]
    assert store.delete("ns", []) == 0
    assert store.delete("other", ["b"]) == 0
    assert store.get("ns", "b") == b"2"


def test_json_helpers_round_trip_dicts(store: OnlineStore) -> None:
    store.put_json("features:user", {"user_B": {"views_7d": 12, "last_page": "/cart", "score": 0.5}})
    assert store.get_json("features:user", "user_B") == {"views_7d": 12, "last_page": "/cart", "score": 0.5}
    assert store.get_json("features:user", "user_C") is None


def test_bad_names_and_values_are_refused_and_write_nothing(store: OnlineStore) -> None:
    with pytest.raises(ValueError, match="namespace"):
        store.get("", "k")
    with pytest.raises(ValueError, match="namespace"):
        store.put_many("a\x00b", {"k": b"v"})
    with pytest.raises(ValueError, match="non-empty"):
        store.get("ns", "")
    with pytest.raises(ValueError, match="hash long keys"):
        store.put_many("ns", {"ok": b"1", "x" * MAX_KEY_BYTES: b"2"})
    with pytest.raises(TypeError, match="msgspec"):
        store.put_many("ns", [("ok", b"1"), ("bad", "a str")])  # type: ignore[list-item]
    assert store.get("ns", "ok") is None  # a bad item fails the whole batch
    longest = "k" * (MAX_KEY_BYTES - len("ns") - 1)
    store.put_many("ns", {longest: b"fits"})
    assert store.get("ns", longest) == b"fits"


def test_write_puts_and_deletes_over_namespaces_at_once(store: OnlineStore) -> None:
    store.put_many("old", {"gone": b"1", "kept": b"2"})
    store.write(
        {"predictions": {"u1": b"0.5"}, "offsets": [("triggers", b"1234")], "old": {"gone": b"again"}},
        {"old": ["gone", "never-there"], "offsets": ["nothing"]},
    )
    # Deletes apply before puts, so a key in both is written.
    assert store.get("predictions", "u1") == b"0.5"
    assert store.get("offsets", "triggers") == b"1234"
    assert store.get_many("old", ["gone", "kept"]) == [b"again", b"2"]
    store.write({}, {"old": ["gone"]})
    assert store.get("old", "gone") is None
    store.write({})  # nothing to do is fine
    store.write({"ns": (pair for pair in [("gen", b"erator")])})
    assert store.get("ns", "gen") == b"erator"


def test_write_checks_everything_before_writing_anything(store: OnlineStore) -> None:
    store.put_many("a", {"keep": b"1"})
    with pytest.raises(TypeError, match="msgspec"):
        store.write({"a": {"new": b"2"}, "b": {"bad": "a str"}}, {"a": ["keep"]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="hash long keys"):
        store.write({"a": {"new": b"2"}}, {"a": ["keep", "x" * MAX_KEY_BYTES]})
    with pytest.raises(ValueError, match="namespace"):
        store.write({"a": {"new": b"2"}, "": {"k": b"v"}})
    assert store.get_many("a", ["keep", "new"]) == [b"1", None]


def test_open_online_store_picks_backends_by_name(tmp_path: Path) -> None:
    with open_online_store("lmdb", tmp_path) as store:
        assert isinstance(store, LmdbOnlineStore)
        assert store.path == tmp_path / "online"
    with open_online_store("memory", tmp_path) as store:
        assert isinstance(store, MemoryOnlineStore)
    with pytest.raises(BackendError, match="use one of: lmdb, memory, redis, rediss"):
        open_online_store("cassandra", tmp_path)


# -- LMDB specifics --------------------------------------------------------------------------------


def _run_child(code: str, *args: object) -> str:
    """Run `code` in a fresh Python process (not a fork: LMDB handles do not survive fork)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_lmdb_writes_of_one_process_are_read_by_another(tmp_path: Path) -> None:
    path = tmp_path / "online"
    with LmdbOnlineStore(path) as store:
        assert store.get("ns", "from-child") is None  # opened (and read) before the child writes
        _run_child(
            """
            import sys
            from kawa.stores.online.lmdb import LmdbOnlineStore
            with LmdbOnlineStore(sys.argv[1]) as store:
                store.put_many("ns", {"from-child": b"hello parent"})
            """,
            path,
        )
        assert store.get("ns", "from-child") == b"hello parent"
        store.put_many("ns", {"from-parent": b"hello child"})
        out = _run_child(
            """
            import sys
            from kawa.stores.online.lmdb import LmdbOnlineStore
            with LmdbOnlineStore(sys.argv[1]) as store:
                print(store.get("ns", "from-parent").decode())
            """,
            path,
        )
        assert out.strip() == "hello child"


def test_lmdb_grows_past_its_initial_map_size_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "online"
    value = b"v" * 1000
    with LmdbOnlineStore(path, map_size=SMALL_MAP) as store:
        for batch in range(8):
            store.put_many("ns", {f"{batch}:{i}": value for i in range(500)})
        assert store.map_size > SMALL_MAP * 8  # 4 MB of values cannot fit in 256 KiB
    with LmdbOnlineStore(path, map_size=SMALL_MAP) as store:  # a reopen adopts the grown size
        assert store.map_size > SMALL_MAP * 8
        assert len(list(store.scan("ns"))) == 4000
        assert store.get("ns", "7:499") == value


def test_lmdb_reader_adopts_a_map_grown_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "online"
    with LmdbOnlineStore(path, map_size=SMALL_MAP) as store:
        store.put_many("ns", {"before": b"1"})
        _run_child(
            """
            import sys
            from kawa.stores.online.lmdb import LmdbOnlineStore
            with LmdbOnlineStore(sys.argv[1], map_size=int(sys.argv[2])) as store:
                for batch in range(8):
                    store.put_many("ns", {f"{batch}:{i}": b"v" * 1000 for i in range(500)})
            """,
            path,
            SMALL_MAP,
        )
        assert store.map_size == SMALL_MAP  # not yet told
        assert store.get("ns", "7:499") == b"v" * 1000
        assert store.map_size > SMALL_MAP * 8
        store.put_many("ns", {"after": b"2"})  # and it can still write
        assert store.get_many("ns", ["before", "after"]) == [b"1", b"2"]


@pytest.mark.timeout(60)  # a starved resize would otherwise hang here for the global timeout
def test_lmdb_readers_in_threads_survive_the_map_growing_under_them(tmp_path: Path) -> None:
    store = LmdbOnlineStore(tmp_path / "online", map_size=SMALL_MAP)
    store.put_many("ns", {"fixed": b"always here"})
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                assert store.get("ns", "fixed") == b"always here"
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for batch in range(16):
            store.put_many("ns", {f"{batch}:{i}": b"x" * 2000 for i in range(250)})
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert reads[0] > 0
    assert store.map_size > SMALL_MAP * 16
    assert len(list(store.scan("ns"))) == 16 * 250 + 1
    store.close()


def test_lmdb_keeps_committed_batches_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "online"
    with LmdbOnlineStore(path) as store:
        store.put_many("ns", {"a": b"1", "b": b"2"})
        store.delete("ns", ["a"])
    with LmdbOnlineStore(path) as store:
        assert store.get_many("ns", ["a", "b"]) == [None, b"2"]


def test_lmdb_refuses_use_in_a_forked_child(tmp_path: Path) -> None:
    with LmdbOnlineStore(tmp_path / "online") as store:
        store.put_many("ns", {"k": b"v"})
        pid = os.fork()
        if pid == 0:  # the child: LMDB's handles and locks belong to the parent
            try:
                store.get("ns", "k")
            except RuntimeError as exc:
                os._exit(0 if "fork" in str(exc) else 2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.get("ns", "k") == b"v"  # the parent is unaffected


def test_lmdb_spec_options_set_the_durability_flags_of_the_handle(tmp_path: Path) -> None:
    with open_online_store("lmdb://?metasync=false", tmp_path) as store:
        assert isinstance(store, LmdbOnlineStore)
        flags = store._env.flags()
        assert (flags["sync"], flags["metasync"]) == (True, False)
        store.put_many("ns", {"k": b"v"})
    with open_online_store("lmdb://?sync=0", tmp_path) as store:
        assert isinstance(store, LmdbOnlineStore)
        assert store.get("ns", "k") == b"v"
        assert (store._env.flags()["sync"], store._env.flags()["metasync"]) == (False, False)
    with pytest.raises(ValueError, match="unknown LMDB option 'fast'"):
        open_online_store("lmdb://?fast=true", tmp_path)
    with pytest.raises(ValueError, match="true or false"):
        open_online_store("lmdb://?sync=maybe", tmp_path)


_WRITER = """
import sys
from kawa.stores.online.lmdb import LmdbOnlineStore
store = LmdbOnlineStore(sys.argv[1], map_size=256 * 1024, metasync=False)
i = 0
print("writing", flush=True)
while True:
    i += 1
    value = str(i).encode()
    store.write(
        {"predictions": {f"e{j}": value for j in range(50)}, "offset": {"at": value}},
        {"pending": [f"p{i - 1}"]},
    )
    store.put_many("pending", {f"p{i}": value})
"""


def _consistent(store: OnlineStore) -> int | None:
    """The batch every namespace agrees on, None if a commit came between the reads; fails on a part."""
    at = store.get("offset", "at")
    predictions = {v for _, v in store.scan("predictions")}
    if store.get("offset", "at") != at:
        return None  # every commit moves the offset: no commit came between two equal readings
    assert predictions == ({at} if at is not None else set()), "a batch was seen in part"
    return int(at or 0)


def test_lmdb_write_is_all_or_nothing_for_readers_and_across_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "online"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
        seen: list[int] = []
        with LmdbOnlineStore(path) as reader:
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                at = _consistent(reader)
                if at is not None:
                    seen.append(at)
        os.kill(child.pid, 9)  # mid-stream: a write transaction may be open
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert seen == sorted(seen) and seen[-1] > seen[0]
    with LmdbOnlineStore(path) as store:
        last = _consistent(store)
        assert last is not None and last >= seen[-1]
        # Each batch deletes the previous pending key atomically with its own write.
        assert [k for k, _ in store.scan("pending")] in (["p" + str(last)], [])
