"""Browser tests: headless Chromium (Debian's package, driven by Playwright) against a real `kawa serve`.

One demo project per test session (the shop, its loyalty pipeline, model and predictions), served
on 127.0.0.1; each test gets a fresh browser page. Screenshots of every page land in
test-artifacts/ui/ (or $KAWA_TEST_ARTIFACTS/ui).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kawa.serve.local import LocalServer
from tests.conftest import kawa
from tests.services import unavailable

ROOT = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("KAWA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
# The loyalty loop only: the pages under test need its runs, model and predictions, not the demo's
# decisions part (RFM, recommendations, segment, bandit), which tests/demo covers.
DEMO = ("--users", "300", "--days", "40", "--seed", "5", "--no-decisions")


class DemoSite(LocalServer):
    """`kawa serve` over a demo project, with its keys."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, env={"KAWA__LAKE__FLUSH_INTERVAL_S": "0.2"})
        self.root = root
        config = yaml.safe_load((root / "kawa.yaml").read_text())
        self.project = config["project"]
        self.keys = config["projects"][self.project]

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role + '_key']}"}, timeout=60
        )


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium", "install Debian's chromium package (`make test` does, as root)")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    chromium_path()  # skip before the slow set-up when there is no browser
    folder = tmp_path_factory.mktemp("ui") / "demo"
    kawa("demo", "--dir", str(folder), *DEMO, cwd=folder.parent)
    server = DemoSite(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, site: DemoSite):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=site.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    # A page whose script threw is broken even when the assertions above passed.
    assert errors == [], f"JavaScript errors on the page: {errors}"


def login(page, site: DemoSite, role: str = "admin", next_path: str = "/") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/login?next={next_path}")
    page.fill("input[name=key]", site.keys[f"{role}_key"])
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Save the whole page as test-artifacts/ui/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
