"""The Redis backends beyond the contracts: durability settings, SIGKILL of redis-server, many processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kawa.stores._redis import UnsafeRedis
from kawa.stores.eventlog import open_event_log
from kawa.stores.eventlog.redis import RedisEventLog
from kawa.stores.online import open_online_store
from kawa.stores.online.redis import RedisOnlineStore

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]


def test_offsets_are_byte_positions_and_trim_says_what_it_freed(redis_url: str, tmp_path: Path) -> None:
    with open_event_log(redis_url, tmp_path, writer=True) as log:
        assert isinstance(log, RedisEventLog)
        assert log.append([b"abc", b"", b"de"]) == [0, 4, 5]
        assert log.end_offset() == 8
        assert log.append([b"f"]) == [8]
        assert log.read(5).records[0].payload == b"de"
        assert log.trim(5) == 5  # "abc" and "" (payload bytes plus one per record)
        assert [r.payload for r in log.read(0).records] == [b"de", b"f"]
        assert log.committed("new-consumer") == 5  # the start of what is left
        assert log.trim(100) == 5 and log.read(0).records == []
        assert log.committed("new-consumer") == log.end_offset() == 10
        assert log.append([b"g"]) == [10]  # offsets go on after a trim


def test_prefixes_keep_two_projects_in_one_database_apart(redis_url: str, tmp_path: Path) -> None:
    with (
        open_event_log(redis_url + "?prefix=shop", tmp_path, writer=True) as shop,
        open_event_log(redis_url + "?prefix=blog", tmp_path, writer=True) as blog,
        open_online_store(redis_url + "?prefix=shop", tmp_path) as shop_online,
        open_online_store(redis_url + "?prefix=blog", tmp_path) as blog_online,
    ):
        shop.append([b"cart"])
        assert blog.read(0).records == [] and blog.end_offset() == 0
        shop_online.put_many("predictions", {"u1": b"shop"})
        assert blog_online.get("predictions", "u1") is None
        assert list(blog_online.scan("predictions")) == []


def test_a_read_only_handle_refuses_to_append(redis_url: str, tmp_path: Path) -> None:
    with open_event_log(redis_url, tmp_path) as log, pytest.raises(RuntimeError, match="read-only"):
        log.append([b"x"])
    with pytest.raises(ValueError, match="durability='sometimes'"):
        open_event_log(redis_url + "?durability=sometimes", tmp_path)


def test_an_unreachable_server_is_an_oserror_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match="redis-server is running"):
        open_event_log("redis://127.0.0.1:1/0", tmp_path, writer=True)


def test_a_server_that_can_lose_writes_is_refused_configured_or_trusted(
    unsafe_redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = unsafe_redis_server
    with pytest.raises(UnsafeRedis, match=r"appendonly no, appendfsync everysec.*durability=configure"):
        open_event_log(server.url, tmp_path, writer=True)
    with open_event_log(server.url, tmp_path, writer=False):
        pass  # readers write nothing that must survive: no check
    with (
        caplog.at_level(logging.WARNING, "kawa.stores"),
        open_online_store(server.url, tmp_path) as online,
    ):
        online.put_many("ns", {"k": b"v"})  # works, and says loudly what a crash may cost
    assert "may be lost on a crash" in caplog.text and "appendonly no" in caplog.text
    with open_event_log(server.url + "?durability=trust", tmp_path, writer=True) as log:
        log.append([b"the operator vouches for the server"])
    with open_event_log(server.url + "?durability=configure", tmp_path, writer=True) as log:
        log.append([b"now durable"])
    with server.client() as client:
        settings = {_text(k): _text(v) for k, v in client.config_get("appendf*").items()}
        settings.update({_text(k): _text(v) for k, v in client.config_get("appendonly").items()})
    assert (settings["appendonly"], settings["appendfsync"]) == ("yes", "always")
    with open_event_log(server.url, tmp_path, writer=True):
        pass  # safe now: the plain check passes
    with server.client() as client:
        client.config_set("maxmemory-policy", "allkeys-lru")
    for durability in ("check", "configure"):  # kawa does not change how a shared server evicts
        with pytest.raises(UnsafeRedis, match="maxmemory-policy allkeys-lru deletes any key"):
            open_event_log(f"{server.url}?durability={durability}", tmp_path, writer=True)


def test_acknowledged_writes_survive_sigkill_of_redis_server(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    log = open_event_log(redis_url, tmp_path, writer=True)
    online = open_online_store(redis_url, tmp_path)
    payloads = [f"event-{i}".encode() for i in range(200)]
    for start in range(0, 200, 20):
        log.append(payloads[start : start + 20])
    log.commit("lake", 77)
    group = log.group("lake-group", "writer-1")
    handed = group.read(max_bytes=100)
    online.write({"predictions": {"u1": b"0.9"}, "offsets": {"triggers": b"123"}})
    end = log.end_offset()
    redis_server.kill()  # nothing gets to shut down cleanly
    redis_server.start()  # reloads the append-only file
    # The same handles reconnect by themselves.
    assert [r.payload for r in log.read(0, max_bytes=10**9).records] == payloads
    assert log.end_offset() == end
    assert log.committed("lake") == 77
    assert group.pending() == len(handed)  # still handed out, to be read again or claimed
    assert online.get_many("predictions", ["u1"]) == [b"0.9"]
    assert online.get("offsets", "triggers") == b"123"
    assert log.append([b"after"]) == [end]
    log.close()
    online.close()


_APPENDER = """
import sys
from pathlib import Path
from kawa.stores.eventlog import open_event_log
url, name = sys.argv[1], sys.argv[2]
with open_event_log(url, Path("."), writer=True) as log:
    for i in range(100):
        log.append([f"{name}:{i}".encode(), f"{name}:{i}b".encode()])
"""


def test_several_processes_append_at_once_without_loss(redis_url: str, tmp_path: Path) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, redis_url, f"p{n}"], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    with open_event_log(redis_url, tmp_path) as log:
        records = log.read(0, max_bytes=10**9).records
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets))
    got = [r.payload.decode() for r in records]
    for n in range(3):  # each process's records, in its order, each batch kept together
        mine = [g for g in got if g.startswith(f"p{n}:")]
        assert mine == [x for i in range(100) for x in (f"p{n}:{i}", f"p{n}:{i}b")]
        firsts = [got.index(f"p{n}:{i}") for i in range(100)]
        assert all(got[at + 1] == f"p{n}:{i}b" for i, at in enumerate(firsts))


def test_live_consumers_share_the_records_and_take_over_a_stuck_ones(redis_url: str, tmp_path: Path) -> None:
    total = 600
    with open_event_log(redis_url, tmp_path, writer=True) as log:
        log.append([f"r{i:04d}".encode() for i in range(total)])
        stuck = log.group("lake", "stuck")
        held = stuck.read(max_bytes=200)  # handed out, then the consumer hangs and never acknowledges
        assert held
        processed: dict[str, list[bytes]] = {"a": [], "b": []}
        errors: list[BaseException] = []

        def consume(name: str) -> None:
            try:
                with log.group("lake", name) as group:
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        records = group.read(max_bytes=300) + group.claim_stale(min_idle_s=0.2)
                        processed[name].extend(r.payload for r in records)
                        group.ack(r.offset for r in records)
                        if group.pending() == 0 and not records:
                            return
                        if not records:
                            time.sleep(0.02)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(name,)) for name in processed]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        everything = processed["a"] + processed["b"]
        assert sorted(everything) == [f"r{i:04d}".encode() for i in range(total)]  # each record once
        assert processed["a"] and processed["b"]  # both took part
        assert {r.payload for r in held} <= set(everything)  # the stuck consumer's records were claimed
        stuck.ack(r.offset for r in held)  # waking up late acknowledges nothing twice
        assert stuck.pending() == 0
        stuck.close()
        with redis_client(redis_url) as client:
            assert {c["name"] for c in client.xinfo_consumers("kawa:log", "lake")} == set()  # all left


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def _consistent(store: RedisOnlineStore) -> int | None:
    """The batch every namespace agrees on, None if a write came between the reads; fails on a part."""
    at = store.get("offset", "at")
    predictions = {v for _, v in store.scan("predictions")}
    if store.get("offset", "at") != at:
        return None
    assert predictions == ({at} if at is not None else set()), "a batch was seen in part"
    return int(at or 0)


def test_online_write_is_all_or_nothing_for_readers(redis_url: str, tmp_path: Path) -> None:
    writer = open_online_store(redis_url, tmp_path)
    reader = open_online_store(redis_url, tmp_path)
    assert isinstance(reader, RedisOnlineStore)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            value = str(i).encode()
            writer.write({"predictions": {f"e{j}": value for j in range(50)}, "offset": {"at": value}})

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            at = _consistent(reader)
            if at is not None:
                seen.append(at)
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert seen == sorted(seen) and seen[-1] > seen[0]
    reader.close()


def test_the_appender_script_survives_a_lost_end_key(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with open_event_log(redis_url, tmp_path, writer=True) as log:
        log.append([b"one", b"two"])
        with redis_server.client() as client:
            client.delete("kawa:log:end")
        assert log.end_offset() == 8
        assert log.append([b"three"]) == [8]
        log.trim(100)
        with redis_server.client() as client:
            client.delete("kawa:log:end")
        assert log.append([b"four"])[0] > 8  # from the stream's last id, even with no entry left


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
