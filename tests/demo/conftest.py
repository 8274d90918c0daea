"""One default-sized demo shop per test session: the structure tests need the real size to have power;
and one small `kawa demo` with every part, shared by the tests that check what it did."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kawa.demo import Shop, ShopConfig, generate
from tests.conftest import KAWA

from ._frame import Envelope, Frame, envelopes, frame

# The small whole demo: big enough for every part to have something to show (checked at this seed).
WHOLE = ShopConfig(users=300, days=40, seed=5)
VISITS = 150


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


@dataclass(frozen=True)
class Demo:
    """A finished `kawa demo` run: its project folder and what it printed."""

    folder: Path
    out: str


@pytest.fixture(scope="session")
def whole_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    args = ["--users", str(WHOLE.users), "--days", str(WHOLE.days), "--seed", str(WHOLE.seed)]
    done = subprocess.run(
        [*KAWA, "demo", "--dir", "demo", *args, "--visits", str(VISITS)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Demo(root / "demo", done.stdout)
