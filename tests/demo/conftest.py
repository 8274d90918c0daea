"""One default-sized demo shop per test session: the structure tests need the real size to have power."""

from __future__ import annotations

import time

import pytest

from kawa.demo import Shop, ShopConfig, generate

from ._frame import Envelope, Frame, envelopes, frame


@pytest.fixture(scope="session")
def timed_shop() -> tuple[Shop, float]:
    started = time.process_time()
    shop = generate(ShopConfig())
    return shop, time.process_time() - started


@pytest.fixture(scope="session")
def shop(timed_shop: tuple[Shop, float]) -> Shop:
    return timed_shop[0]


@pytest.fixture(scope="session")
def wire(shop: Shop) -> list[Envelope]:
    return envelopes(shop)


@pytest.fixture(scope="session")
def events(shop: Shop, wire: list[Envelope]) -> Frame:
    return frame(shop, wire)
