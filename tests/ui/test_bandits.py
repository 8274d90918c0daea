"""The bandits page in a real browser: a bandit's arms with the decision and reward just made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow

BANDITS = """
bandits:
  - name: banner
    arms: [spring, summer]
    policy: {name: ucb1, c: 0.2}
    reward_on: {event_name: banner_click}
"""


def poll(read: Any, done: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not done(found := read()):
        assert time.monotonic() < deadline, f"timed out; last answer {found}"
        time.sleep(0.1)
    return found


@pytest.fixture
def banner(site: DemoSite) -> Iterator[dict[str, Any]]:
    """A bandit declared in bandits.yaml beside the demo's kawa.yaml, one decision, and its reward."""
    declared = site.root / "bandits.yaml"
    declared.write_text(BANDITS)
    try:
        with site.api("read") as reader, site.api("write") as writer:
            poll(lambda: reader.get("/v1/bandits/banner").status_code, lambda code: code == 200)
            decision = reader.post("/v1/bandits/banner/choose", json={"user_id": "ui-visitor"}).json()
            sent = writer.post(
                "/v1/events",
                json={
                    "event_name": "banner_click",
                    "keys": {"user_id": "ui-visitor"},
                    "decision_id": decision["decision_id"],
                },
            )
            assert sent.status_code == 200, sent.text
            poll(lambda: reader.get("/v1/bandits/banner").json(), lambda b: b["rewards"] == 1)
        yield decision
    finally:
        declared.unlink()


def test_a_bandits_arms_decisions_and_rewards(page, site: DemoSite, banner: dict[str, Any]) -> None:
    login(page, site, next_path="/bandits")
    card = page.locator("section.bandit[data-bandit='banner']")
    assert "ucb1" in card.locator("h2").inner_text()
    chosen = card.locator(f"table.arms tr[data-arm='{banner['arm']}']")
    assert chosen.locator("td.rewards").inner_text() == "1"
    assert chosen.locator("td.pulls").inner_text() == "1"
    assert card.locator("th").filter(has_text="upper bound").count() == 1
    decision = card.locator(f"table.decisions tr[data-decision='{banner['decision_id']}']")
    assert "ui-visitor" in decision.inner_text() and "decision_id" in decision.inner_text()
    screenshot(page, "bandits")
