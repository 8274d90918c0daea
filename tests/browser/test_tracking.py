"""Browser tracking end to end: a page on another origin loads kawa.js from `kawa serve`, in Chromium.

One kawa server and one site per module; what the pages send is read back from the `events` table.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.browser.conftest import Site, snippet
from tests.conftest import Server

pytestmark = pytest.mark.slow

_POST = """async ([url, body, headers]) => {
  try {
    const r = await fetch(url, {method: "POST", body, headers});
    return [r.status, await r.text()];
  } catch (e) {
    return [0, String(e)];
  }
}"""


def _page(title: str, head: str, body: str = "") -> str:
    return f"<!doctype html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>"


@pytest.fixture
def plain_page(site: Site, page):  # type: ignore[no-untyped-def]
    """A page of the allowed site without the snippet, for requests the test makes itself."""
    site.pages["/plain.html"] = _page("Plain", "")
    page.goto(site.origin + "/plain.html")
    return page


def _stored(page, name: str) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate(f"localStorage.getItem({name!r})")  # type: ignore[no-any-return]


def test_page_views_clicks_and_identify_land_with_visitor_and_session(
    kawa_server: Server,
    site: Site,
    page,  # type: ignore[no-untyped-def]
) -> None:
    key = kawa_server.keys["write_key"]
    # Nothing is sent on a timer here: the page's events leave by sendBeacon when the page is left.
    site.pages["/shop.html"] = _page(
        "Shop",
        snippet(kawa_server.url, key, flush_interval="60000", batch_size="50"),
        '<button id="buy" data-kawa-event="cart_add" data-kawa-item-id="sku-42" data-kawa-price="9.99" '
        'data-kawa-color="red"><span>Add to cart</span></button><a id="next" href="/next.html">next</a>',
    )
    site.pages["/next.html"] = _page("Next", snippet(kawa_server.url, key))
    page.goto(site.origin + "/shop.html")
    page.wait_for_function("window.kawa && window.kawa.loaded")
    page.click("#buy span")  # a click inside the marked element counts for it
    page.evaluate("history.pushState({}, '', '/shop.html?step=2')")
    visitor = _stored(page, "kawa_vid")
    session = json.loads(_stored(page, "kawa_session"))["id"]
    assert json.loads(_stored(page, "kawa_queue") or "[]") != [], "the events should wait for the beacon"
    page.click("#next")
    page.wait_for_url("**/next.html")
    page.wait_for_function("window.kawa && window.kawa.loaded")
    page.evaluate("kawa('identify', 'user-7', {plan: 'pro'}); kawa('track', 'checkout', {revenue: '12.5'})")
    page.evaluate("kawa('flush')")
    assert _stored(page, "kawa_vid") == visitor

    shop, nxt = site.origin + "/shop.html", site.origin + "/next.html"
    expected = [
        ["cart_add", shop, session, None, "sku-42", 9.99, None, "red"],
        ["checkout", nxt, session, "user-7", None, None, 12.5, None],
        ["identify", nxt, session, "user-7", None, None, None, None],
        ["view", nxt, session, None, None, None, None, None],
        ["view", shop, session, None, None, None, None, None],
        ["view", shop + "?step=2", session, None, None, None, None, None],
    ]
    rows = kawa_server.wait_for(
        "SELECT event_name, page, keys.session_id, keys.user_id, item_id, price, revenue, "
        f"properties->>'$.color' FROM events WHERE keys.visitor_id = '{visitor}' ORDER BY 1, 2",
        expected,
        timeout=20,
    )
    assert rows == expected
    referrer = kawa_server.sql(
        f"SELECT properties->>'$.referrer', properties->>'$.title' FROM events "
        f"WHERE keys.visitor_id = '{visitor}' AND page = '{nxt}' AND event_name = 'view'"
    )
    assert referrer == [[shop + "?step=2", "Next"]]  # the URL the pushState left it at
    page.wait_for_function("localStorage.getItem('kawa_queue') === null")  # acknowledged, so forgotten


def test_a_session_ends_after_30_idle_minutes_and_a_reset_forgets_the_visitor(
    kawa_server: Server,
    site: Site,
    page,  # type: ignore[no-untyped-def]
) -> None:
    site.pages["/idle.html"] = _page(
        "Idle",
        snippet(kawa_server.url, kawa_server.keys["write_key"], flush_interval="60000", batch_size="50"),
    )
    page.goto(site.origin + "/idle.html")
    page.wait_for_function("window.kawa && window.kawa.loaded")
    first = json.loads(_stored(page, "kawa_session"))
    visitor = _stored(page, "kawa_vid")
    # 29 idle minutes keep the session; 31 start a new one.
    for minutes, same in ((29, True), (31, False)):
        before = json.loads(_stored(page, "kawa_session"))["id"]
        page.evaluate(
            "m => { const s = JSON.parse(localStorage.getItem('kawa_session'));"
            " s.last = Date.now() - m * 60000;"
            " localStorage.setItem('kawa_session', JSON.stringify(s)); kawa('track', 'tick'); }",
            minutes,
        )
        after = json.loads(_stored(page, "kawa_queue"))[-1]["keys"]["session_id"]
        assert (after == before) is same, (minutes, before, after)
    assert after != first["id"] and _stored(page, "kawa_vid") == visitor
    page.evaluate("kawa('identify', 'user-9'); kawa('reset'); kawa('track', 'after_logout')")
    last = json.loads(_stored(page, "kawa_queue"))[-1]["keys"]
    assert "user_id" not in last and last["visitor_id"] != visitor and last["session_id"] != after


def test_an_origin_the_project_does_not_allow_is_refused(
    kawa_server: Server,
    site: Site,
    page,  # type: ignore[no-untyped-def]
) -> None:
    tag = uuid.uuid4().hex[:8]
    event = {
        "event_name": "spoofed",
        "keys": {"visitor_id": f"far-{tag}", "api_key": kawa_server.keys["write_key"]},
    }
    refused = httpx.post(
        kawa_server.url + "/v1/events",
        content=json.dumps(event),
        headers={"Origin": site.foreign_origin, "Content-Type": "text/plain"},
    )
    assert refused.status_code == 403
    assert site.foreign_origin in refused.json()["error"] and "allowed_origins" in refused.json()["error"]
    # The same request from a page there: the browser sends it without a preflight, kawa refuses it.
    site.pages["/plain.html"] = _page("Elsewhere", "")
    page.goto(site.foreign_origin + "/plain.html")
    status, text = page.evaluate(_POST, [kawa_server.url + "/v1/events", json.dumps(event), {}])
    assert status == 0 and "Failed to fetch" in text
    # A later event from a server (no Origin) lands; the refused ones, appended before it, never do.
    marker = {"event_name": "marker", "keys": {"visitor_id": f"far-{tag}-marker"}}
    with kawa_server.client() as server_side:
        assert server_side.post("/v1/events", json=marker).status_code == 200
    marked = f"SELECT count(*) FROM events WHERE keys.visitor_id = 'far-{tag}-marker'"
    assert kawa_server.wait_for(marked, [[1]]) == [[1]]
    assert kawa_server.sql(f"SELECT count(*) FROM events WHERE keys.visitor_id = 'far-{tag}'") == [[0]]


def test_preflight_is_answered_for_allowed_origins_only(
    kawa_server: Server,
    site: Site,
    plain_page,  # type: ignore[no-untyped-def]
) -> None:
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = httpx.options(kawa_server.url + "/v1/events", headers={"Origin": site.origin, **ask})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == site.origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    answer = httpx.post(
        kawa_server.url + "/v1/events",
        json={"event_name": "x", "keys": {"visitor_id": "v"}},
        headers={"Origin": site.origin, "Authorization": f"Bearer {kawa_server.keys['read_key']}"},
    )
    # A refusal from the route is readable by the page too, so its script can say why.
    assert (answer.status_code, answer.headers["access-control-allow-origin"]) == (403, site.origin)
    foreign = httpx.options(kawa_server.url + "/v1/t", headers={"Origin": site.foreign_origin, **ask})
    assert foreign.status_code == 403 and "allowed_origins" in foreign.json()["error"]
    assert "access-control-allow-origin" not in foreign.headers
    # A request that needs a preflight (a JSON body and a Bearer key), sent by the browser itself.
    page = plain_page
    tag = uuid.uuid4().hex[:8]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {kawa_server.keys['write_key']}"}
    body = json.dumps({"event_name": "preflighted", "keys": {"visitor_id": f"pre-{tag}"}})
    status, text = page.evaluate(_POST, [kawa_server.url + "/v1/events", body, headers])
    # The page could read the answer, so the browser's CORS checks passed.
    assert (status, json.loads(text)["accepted"]) == (200, 1)
    landed = kawa_server.wait_for(
        f"SELECT event_name FROM events WHERE keys.visitor_id = 'pre-{tag}'", [["preflighted"]]
    )
    assert landed == [["preflighted"]]


def test_a_send_beacon_text_plain_body_lands(
    kawa_server: Server,
    site: Site,
    plain_page,  # type: ignore[no-untyped-def]
) -> None:
    page = plain_page
    tag = uuid.uuid4().hex[:8]
    events = [
        {
            "event_name": "beaconed",
            "keys": {"visitor_id": f"b-{tag}", "api_key": kawa_server.keys["write_key"]},
        },
        {
            "event_name": "beaconed_too",
            "keys": {"visitor_id": f"b-{tag}", "api_key": kawa_server.keys["write_key"]},
        },
    ]
    queued = page.evaluate(
        "([url, body]) => navigator.sendBeacon(url, body)",
        [kawa_server.url + "/v1/events", json.dumps(events)],
    )
    assert queued is True
    rows = kawa_server.wait_for(
        f"SELECT event_name FROM events WHERE keys.visitor_id = 'b-{tag}' ORDER BY 1",
        [["beaconed"], ["beaconed_too"]],
    )
    assert rows == [["beaconed"], ["beaconed_too"]]


def test_events_wait_in_storage_while_kawa_is_unreachable_and_land_later(
    kawa_server: Server,
    site: Site,
    page,  # type: ignore[no-untyped-def]
) -> None:
    site.pages["/offline.html"] = _page(
        "Offline", snippet(kawa_server.url, kawa_server.keys["write_key"], flush_interval="100")
    )
    failed: list[str] = []

    def unreachable(route) -> None:  # type: ignore[no-untyped-def]
        failed.append(route.request.url)
        route.abort("connectionrefused")

    page.context.route(kawa_server.url + "/v1/events", unreachable)
    page.goto(site.origin + "/offline.html")
    page.wait_for_function("window.kawa && window.kawa.loaded")
    page.evaluate("kawa('track', 'offline_add', {item_id: 'sku-1', quantity: '2'})")
    for _ in range(150):  # until the first send and a retry after it have failed (15 s at most)
        if len(failed) >= 2:
            break
        page.wait_for_timeout(100)
    assert len(failed) >= 2
    queued = json.loads(_stored(page, "kawa_queue"))
    assert sorted(e["event_name"] for e in queued) == ["offline_add", "view"]
    page.context.unroute(kawa_server.url + "/v1/events")
    page.wait_for_function("localStorage.getItem('kawa_queue') === null", timeout=30_000)
    visitor = queued[0]["keys"]["visitor_id"]
    expected = [["offline_add", "sku-1", 2], ["view", None, None]]
    rows = kawa_server.wait_for(
        f"SELECT event_name, item_id, quantity FROM events WHERE keys.visitor_id = '{visitor}' ORDER BY 1",
        expected,
    )
    assert rows == expected


def _analytics_js_message(kind: str, anonymous_id: str, page_url: str, **fields: object) -> dict[str, object]:
    """A message as analytics.js (analytics-next 1.84) builds it, fields and all."""
    page = {"path": "/plain.html", "referrer": "", "search": "", "title": "Plain", "url": page_url}
    return {
        "timestamp": "2026-12-06T20:41:36.596Z",
        "integrations": {},
        "type": kind,
        "context": {
            "page": page,
            "userAgent": "Mozilla/5.0 HeadlessChrome",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "next-1.84.3"},
            "timezone": "UTC",
        },
        "messageId": f"ajs-next-{uuid.uuid4()}",
        "anonymousId": anonymous_id,
        "userId": None,
        "sentAt": "2026-12-06T20:41:36.606Z",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        **fields,
    }


def test_segment_short_paths_take_what_analytics_js_sends(
    kawa_server: Server,
    site: Site,
    plain_page,  # type: ignore[no-untyped-def]
) -> None:
    page = plain_page
    anonymous = f"anon-{uuid.uuid4().hex[:8]}"
    key = kawa_server.keys["write_key"]
    url = site.origin + "/plain.html"
    # One call a request, writeKey in a text/plain body: a simple request, no preflight.
    track = _analytics_js_message(
        "track",
        anonymous,
        url,
        event="Clicked Buy",
        properties={"price": 3.5, "product_id": "sku-9"},
        writeKey=key,
    )
    status, text = page.evaluate(
        _POST, [kawa_server.url + "/v1/t", json.dumps(track), {"Content-Type": "text/plain"}]
    )
    assert (status, json.loads(text)["success"]) == (200, True), text
    # Batched, with HTTP Basic and a retry counter as analytics-next adds them: preflighted.
    batch = {
        "writeKey": key,
        "batch": [
            _analytics_js_message("page", anonymous, url, properties={"url": url, "title": "Plain"}),
            _analytics_js_message("identify", anonymous, url, userId="u-1", traits={"plan": "pro"}),
        ],
        "sentAt": "2026-12-06T20:41:37.000Z",
    }
    headers = {
        "Content-Type": "text/plain",
        "Authorization": page.evaluate("k => 'Basic ' + btoa(k + ':')", key),
    }
    status, text = page.evaluate(
        _POST, [kawa_server.url + "/v1/b", json.dumps(batch), {**headers, "X-Retry-Count": "1"}]
    )
    assert (status, json.loads(text)["accepted"]) == (200, 2), text
    expected = [
        ["Clicked Buy", None, "sku-9", 3.5, url, "analytics.js"],
        ["identify", "u-1", None, None, url, "analytics.js"],
        ["page", None, None, None, url, "analytics.js"],
    ]
    rows = kawa_server.wait_for(
        "SELECT event_name, keys.user_id, item_id, price, page, properties->>'$.context.library.name' "
        f"FROM events WHERE keys.visitor_id = '{anonymous}' ORDER BY 1",
        expected,
    )
    assert rows == expected
    # The write key is a credential: it is not kept with the event.
    assert kawa_server.sql(f"SELECT count(*) FROM events WHERE properties LIKE '%{key}%'") == [[0]]


def test_read_and_admin_endpoints_get_no_cors(kawa_server: Server, site: Site) -> None:
    ask = {"Origin": site.origin, "Access-Control-Request-Method": "POST"}
    preflight = httpx.options(kawa_server.url + "/v1/sql", headers=ask)
    assert "access-control-allow-origin" not in preflight.headers
    answer = httpx.post(
        kawa_server.url + "/v1/sql",
        json={"sql": "SELECT 1"},
        headers={"Origin": site.origin, "Authorization": f"Bearer {kawa_server.keys['admin_key']}"},
    )
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_the_script_is_served_with_type_and_caching_headers(kawa_server: Server) -> None:
    script = httpx.get(kawa_server.url + "/kawa.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "max-age=" in script.headers["cache-control"]
    assert "navigator.sendBeacon" in script.text
    again = httpx.get(kawa_server.url + "/kawa.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
