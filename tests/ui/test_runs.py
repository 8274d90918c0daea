"""Starting the loyalty pipeline from its form, following the run live, its logs, and rerunning it."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest

from tests.ui.conftest import DemoSite, login, screenshot
from tests.ui.graph import click_node, graph_nodes, wait_for_graph

pytestmark = pytest.mark.slow

FINISHED = ["succeeded", "failed", "timeout", "cancelled"]
RUN_URL = re.compile(r".*/runs/([0-9a-f]{20})$")


def _wait_until_finished(page: Any) -> str:
    """The run's status once the page shows it finished; the page updates itself (no reload)."""
    page.evaluate("() => { window.kawaSamePage = true; }")
    page.wait_for_function(
        "done => done.includes(document.querySelector('#run-live').dataset.status)",
        arg=FINISHED,
        timeout=240_000,
    )
    assert page.evaluate("() => window.kawaSamePage === true"), "the page was reloaded"
    status = str(page.locator("#run-live").get_attribute("data-status"))
    assert status in FINISHED
    return status


def _recorded(site: DemoSite, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The run as the API has it once its status message is recorded there too."""
    deadline = time.monotonic() + timeout
    with site.api("read") as api:
        while True:
            run: dict[str, Any] = api.get(f"/v1/runs/{run_id}").json()
            if run["message"] is not None or time.monotonic() > deadline:
                return run
            time.sleep(0.2)


def _run_id(url: str) -> str:
    found = RUN_URL.match(url)
    assert found is not None, url
    return found.group(1)


def test_a_run_started_from_the_form_is_followed_live_and_rerun(page, site: DemoSite) -> None:  # type: ignore[no-untyped-def]
    login(page, site, next_path="/pipelines/loyalty")
    wait_for_graph(page, "#pipeline-graph")
    threshold = page.locator("input[name='param.coupon_threshold']")
    assert threshold.input_value() == "0.5"  # pre-filled with the default
    assert page.locator("input[name='param.promote_to']").input_value() == "production"
    experiment = f"ui-{uuid.uuid4().hex[:8]}"
    threshold.fill("0.7")
    # Leave the production alias where the other pages' tests expect it.
    page.fill("input[name='param.promote_to']", "")
    page.fill("input[name='new_experiment']", experiment)
    screenshot(page, "pipeline-form")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(RUN_URL)
    run_id = _run_id(page.url)
    assert page.locator("#run-experiment").inner_text() == experiment
    wait_for_graph(page, "#run-graph")
    screenshot(page, "run-started")

    status = _wait_until_finished(page)
    assert status == "succeeded", page.locator("#run-log").inner_text()[-3000:]
    run = _recorded(site, run_id)
    assert run["status"] == status and run["kind"] == "manual" and run["experiment"] == experiment
    assert run["params"]["coupon_threshold"] == 0.7 and run["params"]["promote_to"] == ""
    assert run["params"]["horizon_days"] == 14  # untouched fields keep their defaults
    assert run["message"] is not None and run["message"]["sent"]["status"] == status
    # The graph shows each step in its recorded state, once the live part has caught up.
    wait_for_graph(page, "#run-graph")
    nodes = graph_nodes(page, "#run-graph")
    assert {n: d["status"] for n, d in nodes.items()} == {s["step"]: s["status"] for s in run["steps"]}
    changed = page.locator("#run-params tr[data-param='coupon_threshold']").inner_text()
    assert "0.7" in changed and "changed" in changed
    assert page.locator("#run-params tr[data-param='horizon_days']").inner_text().count("changed") == 0
    # Its logs came in live, step by step, and end with the last step.
    log = page.locator("#run-log")
    for s in run["steps"]:
        page.wait_for_function(
            "text => document.querySelector('#run-log').innerText.includes(text)", arg=f"== {s['step']} ("
        )
    assert log.inner_text().index("== labelled (") < log.inner_text().index("== scored (")
    # The live part shows the status message once it is recorded (it may trail the run's end).
    page.locator("#status-message").get_by_text("event_log").wait_for()
    assert page.locator("#status-message").get_by_text("event_log").count() == 1
    screenshot(page, "run-finished")

    click_node(page, "#run-graph", "labelled")
    page.wait_for_selector("#step-panel #step-log")
    assert "Step labelled" in page.locator("#step-panel").inner_text()
    assert page.locator("#step-panel #step-log").inner_text().startswith("== labelled (")
    screenshot(page, "run-step")

    page.click("#rerun-form button[type=submit]")
    page.wait_for_url(lambda url: RUN_URL.match(url) is not None and run_id not in url)
    again_id = _run_id(page.url)
    again_status = _wait_until_finished(page)
    again = _recorded(site, again_id)
    assert again["pipeline"] == "loyalty" and again["status"] == again_status
    assert again["params"] == run["params"] and again["experiment"] == experiment

    # Both runs are in the pipeline's runs list.
    page.goto("/pipelines/loyalty")
    for rid in (run_id, again_id):
        assert page.locator(f"#runs-table tr[data-run='{rid}']").count() == 1
