"""The key check asks SQLite whether keys changed at most once per RECHECK_S: another process's
revocation or new key takes effect within that bound, a change made in this process at once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.auth import KeyRing, Role, generate_key
from kawa.auth.keys import RECHECK_S
from kawa.stores.metadata import MetadataStore, open_metadata


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    with open_metadata("sqlite", tmp_path / "state") as store:
        yield store


def elsewhere(store: MetadataStore, sql: str) -> None:
    """A write by another connection that tells no watcher, as another process's would."""
    db = sqlite3.connect(str(store.url.database))
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_the_watcher_asks_at_most_once_per_recheck_and_hears_this_process_at_once(
    store: MetadataStore,
) -> None:
    watcher = store.watcher()
    watcher.recheck_s = 3600.0  # never reached in this test: only committed() can say changed
    try:
        assert watcher.changed() is True
        elsewhere(store, "INSERT INTO projects VALUES ('a', '2026-01-01 00:00:00.000000')")
        assert watcher.changed() is False  # not asked yet
        watcher.committed()
        assert watcher.changed() is True  # asked: the other write shows too
        assert watcher.changed() is False
        watcher.recheck_s = 0.0  # every call asks, as before
        elsewhere(store, "INSERT INTO projects VALUES ('b', '2026-01-01 00:00:00.000000')")
        assert watcher.changed() is True
        assert watcher.changed() is False
    finally:
        watcher.close()


def test_another_process_revocation_takes_effect_within_recheck(store: MetadataStore) -> None:
    with KeyRing(store) as ring:
        keys = ring.add_project("shop")
        assert ring.verify(keys.write_key) is not None  # cached
        elsewhere(store, "UPDATE api_keys SET revoked_at = '2026-01-01 00:00:00.000000'")
        time.sleep(RECHECK_S)
        assert ring.verify(keys.write_key) is None
        assert ring.verify(keys.read_key) is None


def test_a_key_added_by_another_ring_of_this_process_works_at_once(store: MetadataStore) -> None:
    with KeyRing(store) as ring, KeyRing(store) as other:
        ring.add_project("shop")
        late = generate_key(Role.WRITE)
        assert ring.verify(late) is None  # cached as unknown, and the ring has just asked
        other.register("shop", late)
        info = ring.verify(late)
        assert info is not None and info.project == "shop"
