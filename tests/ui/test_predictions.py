"""The predictions page in a real browser: a demo user's stored loyalty prediction and its features."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import kawa
from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def materialised(site: DemoSite) -> Iterator[None]:
    """The demo's RFM features written to the online store, as a project serving them would."""
    kawa("features", "materialize", "rfm", cwd=site.root)
    yield


def top_user(site: DemoSite) -> tuple[str, dict[str, object]]:
    """A demo user the loyalty pipeline scored, and the prediction the API serves for it."""
    with site.api("admin") as client:
        rows = client.post(
            "/v1/sql",
            json={"sql": "SELECT user_id FROM loyalty_predictions ORDER BY score DESC, user_id LIMIT 1"},
        ).json()["rows"]
    user = str(rows[0][0])
    with site.api("read") as client:
        return user, client.get(f"/v1/predictions/loyalty/{user}").json()


def test_look_up_a_users_prediction_and_features(page, site: DemoSite, materialised: None) -> None:
    user, served = top_user(site)
    login(page, site, next_path="/predictions")
    page.fill("#lookup-form input[name=entity]", user)
    page.click("#lookup-form button[type=submit]")
    page.wait_for_url(f"**/predictions?entity={user}")
    row = page.locator("#entity-predictions tr[data-model='loyalty']")
    assert row.locator("td.score").inner_text() == f"{served['score']:.4f}"
    assert f"v{served['model_version']}" in row.inner_text()
    assert served["source"] in row.inner_text()
    features = page.locator("#batch-features")
    assert "rfm" in features.locator("h3").inner_text()
    assert "days_since_last_seen" in features.inner_text()
    assert "no stream views" in page.locator("#stream-features").inner_text()  # the demo declares none
    screenshot(page, "predictions")


def test_an_unknown_id_says_nothing_is_stored(page, site: DemoSite) -> None:
    login(page, site, "read", next_path="/predictions?entity=no-such-user")
    assert "Nothing is stored for" in page.locator("#nothing-found").inner_text()
    assert "no stored prediction" in page.locator("#entity-predictions tr[data-model='loyalty']").inner_text()
