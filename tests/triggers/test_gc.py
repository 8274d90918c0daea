"""The trigger worker process's garbage collection pacer, on a clock the test moves."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kawa.triggers._gc import FULL_EVERY_S, GcPacer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # give this process's objects back to the collector


def test_frozen_cycles_are_freed_by_the_full_collection_only(unfrozen: None) -> None:
    now = [0.0]
    pacer = GcPacer(clock=lambda: now[0])
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: reference counting never frees it
    alive = weakref.ref(a)
    pacer.tick()
    assert gc.get_freeze_count() > 0
    del a, b
    gc.collect()
    assert alive() is not None  # out of the automatic collections' sight
    now[0] = FULL_EVERY_S - 1
    pacer.tick()
    assert alive() is not None
    now[0] = FULL_EVERY_S
    pacer.tick()
    assert alive() is None
    assert gc.get_freeze_count() > 0  # and what is alive is frozen again


def test_frozen_objects_without_cycles_are_still_freed_at_once(unfrozen: None) -> None:
    pacer = GcPacer(clock=lambda: 0.0)
    node = Node()
    alive = weakref.ref(node)
    pacer.tick()
    del node
    assert alive() is None
