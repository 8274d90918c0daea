"""The demo shop's contract: deterministic, demo-sized, valid envelopes in time order, consistent truth."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta

import msgspec
import numpy as np
import pytest

from kawa.demo import Shop, ShopConfig, generate, iter_ndjson_batches

from ._frame import NAMES, Envelope, Frame

SMALL = ShopConfig(users=150, days=21, items=120, visitors=60, seed=3)


def ndjson(shop: Shop, size: int = 500) -> bytes:
    return b"".join(iter_ndjson_batches(shop, size=size))


def test_the_same_seed_gives_byte_identical_ndjson() -> None:
    first, second = ndjson(generate(SMALL)), ndjson(generate(SMALL))
    assert len(first) > 100_000
    assert first == second


def test_ndjson_does_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "import hashlib, sys; from kawa.demo import ShopConfig, generate, iter_ndjson_batches; "
        "shop = generate(ShopConfig(users=150, days=21, items=120, visitors=60, seed=3)); "
        "sys.stdout.write(hashlib.sha256(b''.join(iter_ndjson_batches(shop))).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert digests == {hashlib.sha256(ndjson(generate(SMALL))).hexdigest()}


def test_another_seed_gives_another_shop_with_other_event_ids() -> None:
    one, other = generate(SMALL), generate(msgspec.structs.replace(SMALL, seed=4))
    assert ndjson(one) != ndjson(other)
    assert {e["event_id"] for e in one.events[:200]}.isdisjoint(e["event_id"] for e in other.events[:200])


def test_batches_hold_every_event_once_in_order() -> None:
    shop = generate(SMALL)
    batches = list(iter_ndjson_batches(shop, size=777))
    assert all(len(b.splitlines()) == 777 for b in batches[:-1])
    lines = b"".join(batches).splitlines()
    assert len(lines) == len(shop.events)
    assert [msgspec.json.decode(line) for line in lines[:50]] == shop.events[:50]
    assert msgspec.json.decode(lines[-1]) == shop.events[-1]
    with pytest.raises(ValueError, match="at least 1"):
        next(iter_ndjson_batches(shop, size=0))


def test_events_behave_like_a_read_only_list() -> None:
    shop = generate(SMALL)
    events = shop.events
    assert events[-1] == events[len(events) - 1]
    assert events[10:14] == [events[i] for i in range(10, 14)]
    assert events[20:10:-3] == [events[i] for i in range(20, 10, -3)]
    events[0]["event_name"] = "changed"
    assert events[0]["event_name"] == "session_start"  # every read builds fresh dicts
    with pytest.raises(IndexError, match="out of range"):
        events[len(events)]


def test_default_size_is_a_demo_sized_shop(timed_shop: tuple[Shop, float]) -> None:
    # Generation speed is not asserted here (speed lives in benchmarks); only the size.
    shop, _ = timed_shop
    summary = shop.summary()
    assert 300_000 <= summary["events"] <= 600_000, summary
    assert summary["users"] == 2000 and summary["items"] == 600


def test_every_envelope_is_valid(shop: Shop, wire: list[Envelope]) -> None:
    assert len(wire) == len(shop.events)
    assert len({e.event_id for e in wire}) == len(wire)
    assert {e.event_name for e in wire} == set(NAMES)
    for e in wire:
        assert e.keys.visitor_id.startswith("v_") and e.keys.session_id.startswith("s_")
        assert e.keys.user_id is None or e.keys.user_id.startswith("u_")
        assert e.page.startswith("https://shop.example/")
        if e.item_id is not None:
            assert e.category and e.price is not None and e.price > 0
        if e.event_name == "purchase":
            assert e.quantity is not None and e.quantity >= 1 and e.price is not None
            assert e.revenue == round(e.price * e.quantity, 2)
            assert e.keys.user_id is not None  # checkout needs an account
        else:
            assert e.revenue is None
        if e.event_name in ("cart_add", "cart_remove"):
            assert e.quantity is not None and e.quantity >= 1


def test_events_are_in_time_order_inside_the_window(shop: Shop, wire: list[Envelope], events: Frame) -> None:
    assert all(e.sync_date.endswith("Z") and len(e.sync_date) == 24 for e in wire)
    assert datetime.fromisoformat(wire[0].sync_date) >= shop.start
    assert datetime.fromisoformat(wire[-1].sync_date) < shop.end
    assert shop.end == shop.start + timedelta(days=60)
    assert np.all(np.diff(events.day) >= 0)
    assert shop.end < datetime.now(shop.start.tzinfo), "the default window must lie in the past"


def test_ground_truth_tables_match_the_events(shop: Shop, events: Frame) -> None:
    users = shop.users
    assert [u.user_id for u in users] == [f"u_{i:06d}" for i in range(1, 2001)]
    assert Counter(u.loyalty for u in users if not u.is_bot).keys() == {0, 1, 2, 3}
    assert all(u.loyalty == int(u.loyalty_score * 4) for u in users if not u.is_bot)
    assert 0.01 <= np.mean([u.is_bot for u in users]) <= 0.02
    assert {u.bot_kind for u in users if u.is_bot} == {"scraper", "cart_hoarder", "click_farm"}
    # A user with a signup date appears in the events with that id; one without never does.
    with_id = set(np.unique(events.user[events.user >= 0]).tolist())
    never = [i for i, u in enumerate(users) if u.signup_date is None]
    assert never and not with_id.intersection(never)
    signups = events.user[events.where("signup")]
    assert len(signups) == len(set(signups.tolist())) > 100
    for i in signups[:50].tolist():
        assert shop.start.date() <= users[i].signup_date < shop.end.date()  # type: ignore[operator]
        assert (
            events.day[(events.user == i)].min() >= events.day[events.where("signup") & (events.user == i)][0]
        )

    assert len(shop.items) == 600 and len({i.item_id for i in shop.items}) == 600
    assert {i.cluster for i in shop.items} == set(shop.clusters) and len(shop.clusters) == 30
    assert shop.affinity.shape == (2000, 30) and np.allclose(shop.affinity.sum(axis=1), 1.0)
    bought = np.zeros(len(shop.sessions), dtype=bool)
    bought[events.session[events.where("purchase")]] = True
    assert bought.tolist() == [s.purchased for s in shop.sessions]
    assert {s.session_id for s in shop.sessions} == {f"s_{i + 1:07d}" for i in range(len(shop.sessions))}


def test_anonymous_visits_stitch_to_accounts_by_visitor_id(shop: Shop, wire: list[Envelope]) -> None:
    anonymous = {e.keys.visitor_id for e in wire if e.keys.user_id is None}
    known = {e.keys.visitor_id for e in wire if e.keys.user_id is not None}
    assert sum(e.keys.user_id is None for e in wire) > 0.03 * len(wire)
    # New users browse anonymously before signing up on the same device.
    assert len(anonymous & known) > 100


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="at least 20"):
        ShopConfig(users=5)
    with pytest.raises(ValueError, match="at least 7"):
        ShopConfig(days=3)
    with pytest.raises(ValueError, match="at least 80"):
        ShopConfig(items=60)


def test_docstring_examples_run() -> None:
    import doctest

    import kawa.demo.shop

    outcome = doctest.testmod(kawa.demo.shop)
    assert outcome.attempted >= 2 and outcome.failed == 0
