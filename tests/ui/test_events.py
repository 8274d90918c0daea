"""The events page in a real browser: events arriving live, filters, and rejected events with reasons."""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow


def send(site: DemoSite, events: list[dict[str, object]]) -> dict[str, object]:
    with site.api("write") as client:
        answer = client.post("/v1/events", json=events)
        return answer.json()  # type: ignore[no-any-return]


def test_events_arrive_live_and_filter_by_name_and_user(page, site: DemoSite) -> None:
    login(page, site, next_path="/events")
    assert page.locator("#event-tail tr[data-event-id]").count() > 0  # the demo's events
    user = f"u_live_{uuid.uuid4().hex[:6]}"
    events = [
        {
            "event_name": "view",
            "keys": {"user_id": user},
            "page": f"https://shop.example/p{i}",
            "event_id": f"{user}-v{i}",
        }
        for i in range(3)
    ]
    # A cart add, not a purchase: sent at server time, a purchase would move the loyalty pipeline's
    # newest-purchase cutoffs (the demo shop's events are in 2025) past every other event.
    events.append(
        {"event_name": "cart_add", "keys": {"user_id": user}, "price": 12.5, "event_id": f"{user}-buy"}
    )
    # Sent after the page has loaded: they must appear without a reload.
    sender = threading.Timer(0.5, send, args=(site, events))
    sender.start()
    try:
        page.wait_for_selector(f"#event-tail tr[data-event-id='{user}-buy']", timeout=20_000)
    finally:
        sender.join()
    assert page.url.endswith("/events")  # no reload, no navigation
    screenshot(page, "events")

    page.select_option("#event-filters select[name=event_name]", "cart_add")
    page.fill("#event-filters input[name=user_id]", user)
    page.click("#event-filters button[type=submit]")
    page.wait_for_url(f"**/events?event_name=cart_add&user_id={user}")
    rows = page.locator("#event-tail tr[data-event-id]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-event-id") == f"{user}-buy"
    assert "12.50" in rows.first.inner_text()

    page.select_option("#event-filters select[name=event_name]", "view")
    page.click("#event-filters button[type=submit]")
    page.wait_for_url("**/events?event_name=view*")
    ids = page.locator("#event-tail tr[data-event-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.eventId)"
    )
    assert ids == [f"{user}-v2", f"{user}-v1", f"{user}-v0"]  # newest first
    names = page.locator("#event-tail tr[data-event-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.userId)"
    )
    assert set(names) == {user}
    screenshot(page, "events-filtered")


def test_a_rejected_event_shows_its_reason(page, site: DemoSite) -> None:
    login(page, site)
    page.click("a[href='/events#rejected']")  # the overview's link
    page.wait_for_url("**/events#rejected")
    bad_id = f"bad-{uuid.uuid4().hex[:8]}"
    answer = send(
        site,
        [
            {"event_name": "view", "keys": {"user_id": "u_fine"}},
            {"keys": {"user_id": "u_broken"}, "event_id": bad_id, "page": "https://shop.example/oops"},
        ],
    )
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    # The rejected list refreshes itself: the event shows up with its reason, no reload.
    row = page.locator("#rejected-events tr", has_text=bad_id)
    row.wait_for(timeout=20_000)
    assert "event_name" in row.locator("td.reason").inner_text()
    assert "https://shop.example/oops" in row.locator("code.payload").inner_text()
    page.locator("#rejected").scroll_into_view_if_needed()
    screenshot(page, "events-rejected")
