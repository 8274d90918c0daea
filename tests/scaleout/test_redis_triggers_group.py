"""Two trigger worker processes share one Redis event log, as `kawa serve --trigger-workers 2` runs them.

Events of 40 users (some sent twice, as client retries are) are appended while both workers run; each
worker holds one partition of the users. One worker is SIGKILLed while it holds records it has not
acknowledged. The survivor takes its partition over, claims those records, and every matching event
gets exactly one counted prediction whose streaming features equal a reference engine's as of the event.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.config import IngestConfig, load_config
from kawa.events.collector import Collector
from kawa.events.validate import parse_time
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from kawa.stores.eventlog import open_event_log
from kawa.stores.online import open_online_store
from kawa.streaming import StreamEngine, StreamView, stream
from kawa.triggers import state
from kawa.triggers._scoring import event_row
from tests.scaleout._parts import PartProcesses, kill_holding, until
from tests.triggers.conftest import Webhook

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]

PROJECT = "shop"
BATCHES = 60
PER_BATCH = 50
USERS = 40
START = 1_767_225_600  # 2026-01-01T00:00:00Z
GROUPS = ("triggers-0of2", "triggers-1of2")
FEATURES = """
from kawa.streaming import StreamView, stream
from kawa.triggers import Trigger

activity = StreamView("activity", key="keys.user_id", features={{
    "views": stream.count(where={{"event_name": "view"}}, window="1h"),
    "spend": stream.sum("price", window="24h"),
}})
buyer = Trigger("likely_buyer", on={{"event_name": "view"}}, key="keys.user_id", model="buyer",
                features=[activity], webhook="{webhook}")
"""
ACTIVITY = StreamView(
    "activity",
    key="keys.user_id",
    features={
        "views": stream.count(where={"event_name": "view"}, window="1h"),
        "spend": stream.sum("price", window="24h"),
    },
)
_encode = msgspec.json.Encoder().encode_lines


def _stamp(n: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + n))


def _batch(n: int) -> list[dict[str, Any]]:
    """Batch `n`: events one second apart, every third a cart_add (which updates `spend` only)."""
    out = []
    for i in range(PER_BATCH):
        k = n * PER_BATCH + i
        name = "cart_add" if k % 3 == 0 else "view"
        out.append({"event_id": f"e{k}", "event_name": name, "keys": {"user_id": f"u{(k * 7) % USERS}"},
                    "price": float(k % 23), "sync_date": _stamp(k)})  # fmt: skip
    return out


class Sender(threading.Thread):
    """Appends the batches through a collector; every fourth one's first events again, a little later."""

    def __init__(self, url: str, folder: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.folder = url, folder
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open_event_log(self.url, self.folder, writer=True) as log:
                collector = Collector(log, IngestConfig())
                for n in range(BATCHES):
                    events = _batch(n)
                    if n >= 2 and n % 4 == 0:
                        events += _batch(n - 2)[:5]  # a retry of a request whose reply was lost
                    assert collector.ingest(_encode(events), project=PROJECT, ndjson=True).accepted > 0
                    self.sent = n + 1
                    time.sleep(0.03)
        except BaseException as exc:
            self.error = exc


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.gate.set()
    yield hook
    hook.close()


@pytest.fixture
def project(tmp_path: Path, redis_url: str, webhook: Webhook) -> tuple[Path, Bundle]:
    """A project on the test's Redis with one trigger on streaming features, and its model registered."""
    (tmp_path / "kawa.yaml").write_text(
        f"project: {PROJECT}\nstores:\n  event_log: {redis_url}\n"
        "triggers:\n  workers: 2\n  claim_idle_s: 3.0\n"
    )
    (tmp_path / "features.py").write_text(FEATURES.format(webhook=webhook.url))
    views = [1, 2, 3, 4, 5, 6, 7, 8] * 12
    spend = [float(v * 5 % 37) for v in range(len(views))]
    table = pa.table(
        {
            "views": views,
            "spend": spend,
            "bought": [int(v + s / 10 > 6) for v, s in zip(views, spend, strict=True)],
        }
    )
    bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression())
    runtime = Runtime(load_config(tmp_path / "kawa.yaml"))
    registry = Registry.from_runtime(runtime)
    registry.promote(PROJECT, "buyer", registry.register(PROJECT, "buyer", bundle))
    registry.close()
    runtime.close()
    return tmp_path, bundle


@pytest.fixture
def start_worker(project: tuple[Path, Bundle]) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts `python -m kawa.serve.worker <part>` in the project; kills what is left after the test."""
    parts = PartProcesses(project[0])
    yield parts.start
    parts.kill_all()


def _expected(bundle: Bundle) -> dict[str, float]:
    """Each distinct view's score with the streaming features as of itself, from one in-order engine."""
    engine = StreamEngine([ACTIVITY])
    seen: set[str] = set()
    scores: dict[str, float] = {}
    for n in range(BATCHES):
        for event in _batch(n):
            t_us = parse_time(event["sync_date"])
            engine.apply(event, t_us)
            seen.add(event["event_id"])
            if event["event_name"] == "view":
                values = engine.values("activity", event["keys"]["user_id"], t_us)
                scores[event["event_id"]] = float(bundle.predict_one({**event_row(event), **values}))
    return scores


@pytest.mark.slow
def test_two_trigger_workers_share_the_log_and_a_killed_ones_partition_is_taken_over(
    project: tuple[Path, Bundle],
    redis_url: str,
    redis_server: RedisServer,
    webhook: Webhook,
    start_worker: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    root, bundle = project
    survivor, victim = start_worker("triggers"), start_worker("triggers-2")
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "host"
    name = f"{host}-{victim.pid}"
    with redis_server.client() as redis:

        def holders() -> list[str | None]:
            return [None if (v := redis.get(f"kawa:lease:{g}")) is None else v.decode() for g in GROUPS]

        def groups() -> set[str]:
            return (
                {g["name"].decode() for g in redis.xinfo_groups("kawa:log")}
                if redis.exists("kawa:log")
                else set()
            )

        until(lambda: holders() == [f"{host}-{survivor.pid}", name] and groups() >= set(GROUPS), 60,
               "each worker holds its own partition")  # fmt: skip
        outs = [root / "triggers.out", root / "triggers-2.out"]
        until(
            lambda: all(b"at log offset" in out.read_bytes() for out in outs), 90, "both loaded their model"
        )
        sender = Sender(redis_url, root)
        sender.start()
        until(lambda: sender.sent >= BATCHES // 3 or not sender.is_alive(), 60, "a third was sent")
        held = kill_holding(redis, victim, GROUPS[1], name)
        assert held, "the victim never held a record unacknowledged"
        sent_at_kill = sender.sent
        sender.join(timeout=60)
        assert sender.error is None and sender.sent == BATCHES
        assert sent_at_kill < BATCHES  # events kept coming after the kill

        expected = _expected(bundle)
        online = open_online_store("lmdb", root / ".kawa")
        try:
            victims_part = state.read_stats(online, PROJECT, "@1of2").get("likely_buyer")
            assert victims_part is not None and victims_part.matched > 0  # it did work before the kill

            def counted() -> int:
                stats = state.read_stats(online, PROJECT).get("likely_buyer")
                return 0 if stats is None else stats.matched

            until(lambda: counted() >= len(expected) and not any(
                redis.xpending("kawa:log", g)["pending"] for g in GROUPS
            ), 60, "every view was scored")  # fmt: skip
            until(
                lambda: {b["event_id"] for _, b in webhook.calls} >= set(expected), 30, "all were delivered"
            )
            total = state.read_stats(online, PROJECT)["likely_buyer"]
        finally:
            online.close()
    # Exactly once where it is counted (results, counters and offsets are one write per partition),
    # at least once where it is delivered; each score as of its own event's streaming features.
    assert (total.matched, total.scored, total.errors) == (len(expected), len(expected), 0)
    got: dict[str, float] = {}
    for _, body in webhook.calls:
        assert body["score"] == pytest.approx(expected[body["event_id"]], rel=1e-9), body
        got[body["event_id"]] = body["score"]
    assert set(got) == set(expected)
    assert b"claimed" in (root / "triggers.out").read_bytes()
    assert f"holds partition {GROUPS[1]}".encode() in (root / "triggers.out").read_bytes()
    print(f"\n{len(expected)} views scored; the victim held {len(held)} records at the kill")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0


def test_a_lease_has_one_holder_until_it_is_released_or_lapses(redis_url: str, tmp_path: Path) -> None:
    with open_event_log(redis_url, tmp_path) as log:
        assert log.holder("triggers-0of2") is None
        assert log.hold("triggers-0of2", "a", 0.3) and log.hold("triggers-0of2", "a", 0.3)  # taken, renewed
        assert not log.hold("triggers-0of2", "b", 0.3) and log.holder("triggers-0of2") == "a"
        log.release("triggers-0of2", "b")  # not b's to give up
        assert log.holder("triggers-0of2") == "a"
        log.release("triggers-0of2", "a")
        assert log.hold("triggers-0of2", "b", 0.3) and log.holder("triggers-0of2") == "b"
        until(lambda: log.holder("triggers-0of2") is None, 5, "b's lease lapsed")
        assert log.hold("triggers-0of2", "a", 0.3)
        with pytest.raises(ValueError, match="lease name"):
            log.hold("../x", "a", 1.0)
