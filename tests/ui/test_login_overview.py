"""Logging in (admin, read, write, wrong keys) and the live overview, in a real browser."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow


def test_pages_need_a_login_and_a_write_key_cannot_log_in(page, site: DemoSite) -> None:
    page.goto("/?from=deep-link")
    assert "/login" in page.url
    page.fill("input[name=key]", site.keys["write_key"])
    page.click("button[type=submit]")
    assert "a write key cannot log in" in page.locator(".error").inner_text()
    page.fill("input[name=key]", "kw_a_not-a-real-key-at-all-000000000000000")
    page.click("button[type=submit]")
    assert "not valid" in page.locator(".error").inner_text()
    screenshot(page, "login")
    page.fill("input[name=key]", site.keys["admin_key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/?from=deep-link")


def test_a_read_key_sees_pages_read_only(page, site: DemoSite) -> None:
    login(page, site, "read")
    assert page.locator(".role").inner_text() == "read"
    page.locator("form[action='/logout'] button").click()
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url


def test_the_overview_shows_runs_models_and_events_arriving_live(page, site: DemoSite) -> None:
    login(page, site)
    assert page.locator("#recent-runs").get_by_text("loyalty").count() >= 1
    assert "production" in page.locator("#production-models").inner_text()
    page.wait_for_function("() => document.querySelector('#ingest-chart') && Chart.getChart('ingest-chart')")
    before = int(page.locator("#events-last-hour").inner_text().replace(",", ""))
    assert before > 0  # the demo sent its shop within the last hour

    stop = threading.Event()

    def send() -> None:
        with site.api("write") as client:
            while not stop.is_set():
                batch = [
                    {"event_name": "view", "keys": {"user_id": "u_live"}, "event_id": uuid.uuid4().hex}
                    for _ in range(20)
                ]
                client.post("/v1/events", json=batch).raise_for_status()
                time.sleep(0.2)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        # No reload: the live part refreshes itself every few seconds.
        page.wait_for_function(
            "n => parseInt(document.querySelector('#events-last-hour').innerText.replace(/,/g, '')) > n",
            arg=before,
            timeout=20_000,
        )
    finally:
        stop.set()
        sender.join()
    screenshot(page, "overview")
