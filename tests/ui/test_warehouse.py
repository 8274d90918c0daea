"""The warehouse pages in a real browser: tables, schema, a million-row preview page by page, the SQL box."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from kawa.config import load_config
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table
from tests.ui.conftest import DemoSite, login, screenshot

pytestmark = pytest.mark.slow

ROWS = 1_000_000
DASH = "\u2013"  # the pager writes ranges with an en dash


@pytest.fixture(scope="module")
def big_table(site: DemoSite) -> Iterator[str]:
    """A million-row table in the site's lake, written as `kawa load` writes one."""
    runtime = Runtime(load_config(site.root / "kawa.yaml"))
    try:
        data = pa.table(
            {
                "order_id": pa.array(range(ROWS), pa.int64()),
                "amount": pa.array([(i % 1000) / 10 for i in range(ROWS)], pa.float64()),
                "country": pa.array(["JP", "FR", "BR", "US"] * (ROWS // 4)),
            }
        )
        write_table(runtime.warehouse(site.project), "big_orders", data)
    finally:
        runtime.close()
    yield "big_orders"


def first_ids(page) -> list[int]:  # type: ignore[no-untyped-def]
    cells = page.locator("#preview table.data tr td:first-child").all_inner_texts()
    return [int(c) for c in cells]


def test_tables_schema_and_a_million_rows_page_by_page(page, site: DemoSite, big_table: str) -> None:
    login(page, site, next_path="/warehouse")
    row = page.locator(f"#tables tr[data-table='{big_table}']")
    assert row.locator("td.rows").inner_text() == "1,000,000"
    events = page.locator("#tables tr[data-table='events']")
    assert int(events.locator("td.rows").inner_text().replace(",", "")) > 0
    assert "Every accepted event" in events.locator("td.description").inner_text()  # from the catalog
    screenshot(page, "warehouse")

    row.locator("a").click()
    page.wait_for_url(f"**/warehouse/{big_table}")
    assert page.locator("#table-rows").inner_text() == "1,000,000"
    schema = page.locator("#schema tr[data-column]").evaluate_all("rows => rows.map(r => r.dataset.column)")
    assert schema == ["order_id", "amount", "country"]
    assert page.locator("#page-range").inner_text() == f"rows 1{DASH}50 of 1,000,000"
    assert first_ids(page) == list(range(50))

    page.click("#next-page")
    page.wait_for_selector("#pager[data-offset='50']")
    assert first_ids(page) == list(range(50, 100))
    assert page.locator("#page-range").inner_text() == f"rows 51{DASH}100 of 1,000,000"

    started = time.monotonic()
    page.click("#last-page")
    page.wait_for_selector(f"#pager[data-offset='{ROWS - 50}']")
    took = time.monotonic() - started
    assert first_ids(page) == list(range(ROWS - 50, ROWS))
    assert page.locator("#page-range").inner_text() == f"rows 999,951{DASH}1,000,000 of 1,000,000"
    assert page.locator("#next-page").is_disabled()
    # Server-side LIMIT/OFFSET over the one file that holds the page: well under the time of a full scan
    # on a loaded machine too.
    assert took < 5, f"the last page took {took:.1f} s"

    page.click("#prev-page")
    page.wait_for_selector(f"#pager[data-offset='{ROWS - 100}']")
    assert first_ids(page)[0] == ROWS - 100
    assert page.url.endswith(f"/warehouse/{big_table}")  # paged in place
    screenshot(page, "warehouse-table")


def test_the_sql_box_shows_results_and_errors(page, site: DemoSite) -> None:
    login(page, site, next_path="/warehouse")
    page.fill("#sql-form textarea", "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC")
    page.click("#sql-form button[type=submit]")
    page.wait_for_selector("#sql-summary")
    headers = page.locator("#sql-result table.data tr").first.locator("th").all_inner_texts()
    assert [h.split("\n")[0] for h in headers] == ["event_name", "n"]
    names = page.locator("#sql-result table.data tr td:first-child").all_inner_texts()
    assert "view" in names and "purchase" in names
    with site.api("admin") as client:
        expected = client.post("/v1/sql", json={"sql": "SELECT count(DISTINCT event_name) AS n FROM events"})
    assert len(names) == expected.json()["rows"][0][0]
    screenshot(page, "warehouse-sql")

    page.fill("#sql-form textarea", "SELECT * FROM no_such_table")
    page.click("#sql-form button[type=submit]")
    error = page.locator("#sql-error")
    error.wait_for()
    assert "no_such_table" in error.inner_text() and "does not exist" in error.inner_text()
    screenshot(page, "warehouse-sql-error")


def test_a_read_key_sees_tables_but_no_sql_box(page, site: DemoSite) -> None:
    login(page, site, "read", next_path="/warehouse")
    assert page.locator("#tables tr[data-table='events']").count() == 1
    assert page.locator("#sql-form").count() == 0
    answer = page.request.post(
        "/warehouse/sql", form={"sql": "SELECT 1"}, headers={"Origin": site.url, "Accept": "text/html"}
    )
    assert answer.status == 403
    assert "read key cannot" in answer.text()
    page.goto("/warehouse/events")
    assert page.locator("#preview table.data").count() == 1  # read-only pages still show the data
    screenshot(page, "warehouse-read-key")
