"""Every route of the app x {no key, write, read, admin} x {own project, other project}.

`ROUTES` is the expected table: who may call each route and what another project's key may see.
A route the app serves without an entry here fails `test_every_route_has_an_entry`, so a new endpoint
must say who may call it. API routes take `Authorization: Bearer KEY`; UI pages take the key in the
login cookie (write keys cannot log in), and refuse with a redirect to /login or a 403.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
import pytest
from fastapi.routing import iter_route_contexts
from sklearn.linear_model import LogisticRegression

from kawa.api.app import create_app
from kawa.config import load_config
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from tests.conftest import Server
from tests.hardening.conftest import TABLE

pytestmark = pytest.mark.slow

TOKEN = uuid.uuid4().hex[:8]
MODEL, EVENT, USER = f"model_{TOKEN}", f"event_{TOKEN}", f"user_{TOKEN}"

# Who may call a route. API routes read the Authorization header; UI routes read the login cookie.
PUBLIC = frozenset({"none", "write", "read", "admin"})
SEND = frozenset({"write", "admin"})
READ = frozenset({"read", "admin"})
ADMIN = frozenset({"admin"})


@dataclass(frozen=True)
class Rule:
    """Who may call a route, and what another project's allowed key gets.

    scope "object": the path names an object of the own project, so another project gets 403/404;
    "project": another project gets its own (empty) view, never the own project's data;
    "public": the same for every caller.
    """

    roles: frozenset[str]
    scope: str
    ui: bool = False
    json: Any = None
    form: dict[str, str] | None = None
    params: dict[str, str] = field(default_factory=dict)
    basic: bool = False  # Segment's libraries send the write key as the HTTP Basic user name
    form_key: bool = False  # the key travels in the form (logging in)


EV = {"event_name": EVENT, "keys": {"user_id": USER}}
# What the matrix itself sends: no marker, since other projects send it too.
SENT = {"event_name": "sent", "keys": {"user_id": "sender"}}
SEG = {"userId": "sender", "event": "sent", "groupId": "g", "previousId": "before"}
BATCH = {"batch": [{"type": "track", **SEG}]}
# The run's parameter check comes after the key check, so an unknown parameter answers 400 and no
# run starts; reruns of a real run do start one (they take no parameters).
BAD_PARAMS = {"params": {"no_such_param": 1}}

ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/openapi.json"): Rule(PUBLIC, "public"),
    ("GET", "/docs"): Rule(PUBLIC, "public"),
    ("GET", "/docs/oauth2-redirect"): Rule(PUBLIC, "public"),
    ("GET", "/redoc"): Rule(PUBLIC, "public"),
    ("GET", "/healthz"): Rule(PUBLIC, "public"),
    ("GET", "/metrics"): Rule(PUBLIC, "public"),
    ("GET", "/kawa.js"): Rule(PUBLIC, "public"),
    # Ingest: any write or admin key sends into its own project; the route names no object.
    ("POST", "/v1/events"): Rule(SEND, "project", json=SENT),
    **{
        ("POST", p): Rule(
            SEND, "project", json=BATCH if p in ("/v1/batch", "/v1/b", "/v1/import") else SEG, basic=True
        )
        for p in (
            "/v1/track",
            "/v1/page",
            "/v1/screen",
            "/v1/identify",
            "/v1/group",
            "/v1/alias",
            "/v1/t",
            "/v1/p",
            "/v1/s",
            "/v1/i",
            "/v1/g",
            "/v1/a",
            "/v1/batch",
            "/v1/b",
            "/v1/import",
        )
    },
    ("GET", "/v1/events/recent"): Rule(READ, "project"),
    ("GET", "/v1/events/rejected"): Rule(READ, "project"),
    ("POST", "/v1/sql"): Rule(ADMIN, "project", json={"sql": f"SELECT * FROM {TABLE}"}),
    ("GET", "/v1/tables"): Rule(READ, "project"),
    ("GET", "/v1/tables/{name}"): Rule(READ, "object"),
    ("GET", "/v1/tables/{name}/rows"): Rule(READ, "object"),
    ("GET", "/v1/predictions/{model}/{entity_id}"): Rule(READ, "object"),
    ("GET", "/v1/entities/{entity_id}"): Rule(READ, "project"),
    ("POST", "/v1/models/{name}/predict"): Rule(READ, "object", json={"age": 30, "media": "TV"}),
    ("GET", "/v1/models"): Rule(READ, "project"),
    ("GET", "/v1/models/{name}"): Rule(READ, "object"),
    ("GET", "/v1/models/{name}/versions/{version}"): Rule(READ, "object"),
    ("POST", "/v1/models/{name}/aliases/{alias}"): Rule(ADMIN, "object", json={"version": 1}),
    ("GET", "/v1/triggers"): Rule(READ, "project"),
    ("GET", "/v1/triggers/{name}/errors"): Rule(READ, "object"),
    # Pipelines are the folder's code, shared by its projects; their runs belong to one project.
    ("GET", "/v1/pipelines"): Rule(READ, "project"),
    ("GET", "/v1/pipelines/{name}"): Rule(READ, "project"),
    ("POST", "/v1/pipelines/{name}/runs"): Rule(ADMIN, "project", json=BAD_PARAMS),
    ("GET", "/v1/runs"): Rule(READ, "project"),
    ("POST", "/v1/runs/{run_id}/rerun"): Rule(ADMIN, "object"),
    ("GET", "/v1/runs/{run_id}"): Rule(READ, "object"),
    ("GET", "/v1/runs/{run_id}/logs"): Rule(READ, "object"),
    ("GET", "/v1/catalog"): Rule(READ, "project"),
    ("GET", "/v1/lineage/{name}"): Rule(READ, "object"),
    ("GET", "/v1/lineage"): Rule(READ, "project"),
    ("GET", "/v1/lineage/{name}/runs"): Rule(READ, "object"),
    ("POST", "/v1/bandits/{name}/choose"): Rule(READ, "object", json={"user_id": USER}),
    ("GET", "/v1/bandits"): Rule(READ, "project"),
    ("GET", "/v1/bandits/{name}"): Rule(READ, "object"),
    ("GET", "/v1/bandits/{name}/decisions"): Rule(READ, "object"),
    ("GET", "/v1/recommendations/{user_id}"): Rule(READ, "object"),
    ("GET", "/v1/segments"): Rule(READ, "project"),
    ("GET", "/v1/segments/{name}/deliveries"): Rule(READ, "object"),
    # The web UI: a login with a read or admin key; actions that change things need an admin login.
    ("GET", "/ui/static/{path}"): Rule(PUBLIC, "public", ui=True),
    ("GET", "/login"): Rule(PUBLIC, "public", ui=True),
    # Logging in takes the key in the form: read and admin keys may, write keys and none may not.
    ("POST", "/login"): Rule(READ, "public", ui=True, form={"next": "/models"}, form_key=True),
    ("POST", "/logout"): Rule(PUBLIC, "public", ui=True),
    ("GET", "/"): Rule(READ, "project", ui=True),
    ("GET", "/overview/live"): Rule(READ, "project", ui=True),
    ("GET", "/events"): Rule(READ, "project", ui=True),
    ("GET", "/events/live"): Rule(READ, "project", ui=True),
    ("GET", "/events/rejected"): Rule(READ, "project", ui=True),
    ("GET", "/warehouse"): Rule(READ, "project", ui=True),
    ("POST", "/warehouse/sql"): Rule(ADMIN, "project", ui=True, form={"sql": f"SELECT * FROM {TABLE}"}),
    ("GET", "/warehouse/{name}"): Rule(READ, "object", ui=True),
    ("GET", "/warehouse/{name}/rows"): Rule(READ, "object", ui=True),
    ("GET", "/pipelines"): Rule(READ, "project", ui=True),
    ("GET", "/pipelines/{name}"): Rule(READ, "project", ui=True),
    ("GET", "/pipelines/{name}/runs"): Rule(READ, "project", ui=True),
    ("GET", "/pipelines/{name}/steps/{step}"): Rule(READ, "project", ui=True),
    ("POST", "/pipelines/{name}/runs"): Rule(ADMIN, "project", ui=True, form={"param.scale": "x"}),
    ("GET", "/runs/{run_id}"): Rule(READ, "object", ui=True),
    ("GET", "/runs/{run_id}/live"): Rule(READ, "object", ui=True),
    ("GET", "/runs/{run_id}/logs/stream"): Rule(READ, "object", ui=True),
    ("GET", "/runs/{run_id}/steps/{step}"): Rule(READ, "object", ui=True),
    ("POST", "/runs/{run_id}/rerun"): Rule(ADMIN, "object", ui=True),
    ("GET", "/models"): Rule(READ, "project", ui=True),
    ("GET", "/models/{name}"): Rule(READ, "object", ui=True),
    ("POST", "/models/{name}/promote"): Rule(ADMIN, "object", ui=True, form={"version": "1"}),
    ("POST", "/models/{name}/try"): Rule(
        READ, "object", ui=True, form={"field.age": "30", "field.media": "TV"}, params={"version": "1"}
    ),
    ("GET", "/predictions"): Rule(READ, "project", ui=True, params={"entity": USER}),
    ("GET", "/bandits"): Rule(READ, "project", ui=True),
    ("GET", "/lineage"): Rule(READ, "project", ui=True),
    ("GET", "/lineage/node"): Rule(READ, "object", ui=True, params={"id": f"table:{TABLE}"}),
}

WHO = ("none", "write", "read", "admin")
CASES = [
    pytest.param(route, who, project, id=f"{route[0]} {route[1]} {who} {project}")
    for route in ROUTES
    for who in WHO
    # Without a key, and on routes that show every caller the same, there is no other project to try.
    for project in (("own",) if who == "none" or ROUTES[route].scope == "public" else ("own", "other"))
]


def live_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route `app` serves; a mounted folder counts as one GET route."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        if context.methods is None:  # a Mount (the UI's static files)
            found.add(("GET", context.path + "/{path}"))
        found |= {(m, context.path) for m in context.methods or () if m != "HEAD"}
    return found


@dataclass
class Setup:
    server: Server
    other: dict[str, str]
    run_id: str
    path_values: dict[str, str]

    def key(self, who: str, project: str) -> str | None:
        if who == "none":
            return None
        return (self.server.keys if project == "own" else self.other)[f"{who}_key"]

    @property
    def markers(self) -> tuple[str, ...]:
        """Strings only the own project's data holds."""
        return (MODEL, EVENT, USER, self.run_id)


@pytest.fixture(scope="module")
def setup(served: Server) -> Iterator[Setup]:
    server = served  # the own project's; `other` is a second project of the same server
    other = server.add_project("other" + TOKEN)
    runtime = Runtime(load_config(server.root / "kawa.yaml"))
    try:
        table = pa.table(
            {"age": [20, 30, 50, 60] * 5, "media": ["TV", "Radio"] * 10, "bought": [0, 0, 1, 1] * 5}
        )
        bundle = Bundle.fit(table, label="bought", estimator=LogisticRegression())
        registry = Registry.from_runtime(runtime)
        registry.register(server.project, MODEL, bundle, metrics=bundle.evaluate(table))
        registry.promote(server.project, MODEL, 1)
    finally:
        runtime.close()
    with server.client("write") as client:
        assert client.post("/v1/events", json=EV).status_code == 200
    with server.client("admin") as client:
        started = client.post("/v1/pipelines/matrix/runs", json={})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 90
        while client.get(f"/v1/runs/{run_id}").json()["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the matrix pipeline's run did not end"
            time.sleep(0.2)
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
    assert server.wait_for(f"SELECT count(*) FROM events WHERE event_name = '{EVENT}'", [[1]]) == [[1]]
    values = {
        "name": MODEL,
        "model": MODEL,
        "entity_id": USER,
        "user_id": USER,
        "version": "1",
        "alias": "production",
        "run_id": run_id,
        "step": "out",
        "path": "kawa.css",
    }
    yield Setup(server, other, run_id, values)


def url_of(path: str, setup: Setup) -> str:
    """The route's path with real values of the own project's objects."""
    names = {"name": _name_for(path)}
    return path.format(**{**setup.path_values, **names})


def _name_for(path: str) -> str:
    if path.startswith(("/v1/tables", "/v1/lineage", "/warehouse")):
        return TABLE
    if path.startswith(("/v1/pipelines", "/pipelines")):
        return "matrix"
    return MODEL


def call(setup: Setup, route: tuple[str, str], who: str, project: str) -> httpx.Response:
    method, path = route
    rule = ROUTES[route]
    key = setup.key(who, project)
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if rule.ui:
        headers = {"Accept": "text/html", "Origin": setup.server.url}
        if key is not None:
            cookies = {"kawa_key": key}
    elif key is not None and rule.basic:
        headers = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    elif key is not None:
        headers = {"Authorization": f"Bearer {key}"}
    form = {**rule.form, "key": key or ""} if rule.form is not None and rule.form_key else rule.form
    with httpx.Client(base_url=setup.server.url, cookies=cookies, timeout=60) as client:
        request = client.build_request(
            method, url_of(path, setup), headers=headers, params=rule.params, json=rule.json, data=form
        )
        response = client.send(request, stream=True)
        try:
            # Live streams (a run's log) end once the run has; read a bounded part in any case.
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > 2_000_000:
                    break
            response._content = body
        finally:
            response.close()
    return response


def refused(response: httpx.Response, rule: Rule) -> bool:
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("location", "")
    return rule.ui and response.status_code == 303 and location.startswith("/login?")


def test_every_route_has_an_entry(served: Server) -> None:
    runtime = Runtime(load_config(served.root / "kawa.yaml"))
    try:
        routes = live_routes(create_app(runtime))
    finally:
        runtime.close()
    missing = sorted(routes - set(ROUTES))
    assert not missing, f"routes without an entry in ROUTES (say who may call them): {missing}"
    gone = sorted(set(ROUTES) - routes)
    assert not gone, f"ROUTES names routes the app no longer serves: {gone}"


Case = tuple[tuple[str, str], str, str]


@pytest.fixture(scope="module")
def answers(setup: Setup) -> dict[Case, httpx.Response | Exception]:
    """Every case's response, asked a few at a time (the server answers requests concurrently)."""

    def ask(case: Case) -> httpx.Response | Exception:
        try:
            return call(setup, *case)
        except Exception as exc:  # reported by the case's own test
            return exc

    cases: list[Case] = [tuple(c.values) for c in CASES]  # type: ignore[misc]
    with ThreadPoolExecutor(6) as pool:
        return dict(zip(cases, pool.map(ask, cases), strict=True))


@pytest.mark.parametrize(("route", "who", "project"), CASES)
def test_key_scope(
    setup: Setup,
    answers: dict[Case, httpx.Response | Exception],
    route: tuple[str, str],
    who: str,
    project: str,
) -> None:
    rule = ROUTES[route]
    response = answers[(route, who, project)]
    if isinstance(response, Exception):
        raise response
    status = response.status_code
    where = f"{route[0]} {response.request.url.path} as {who} of {project}: {status} {response.text[:300]}"
    if who not in rule.roles:
        assert refused(response, rule), f"should be refused: {where}"
        if not rule.ui:
            assert status == (401 if who == "none" else 403), where
            assert "error" in response.json(), where
        return
    assert not refused(response, rule), f"should be allowed: {where}"
    assert status < 500, where + "\n" + "\n".join(list(setup.server.log)[-30:])
    if project == "other" and rule.scope == "object":
        assert status in (403, 404), f"another project's key reached the own project's object: {where}"
    if project == "other" and rule.scope != "public" and status < 400:
        asked = str(response.request.url)
        leaked = [m for m in setup.markers if m in response.text and m not in asked]
        assert not leaked, f"another project's key sees the own project's {leaked}: {where}"


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/v1/models", MODEL),
        ("/v1/runs", "run_id"),
        ("/v1/events/recent", EVENT),
        ("/events", EVENT),
        ("/models", MODEL),
    ],
)
def test_the_own_project_sees_what_others_must_not(setup: Setup, path: str, marker: str) -> None:
    """The markers the matrix looks for do show for the own project's read key, so their absence counts."""
    key = setup.key("read", "own")
    ui = not path.startswith("/v1/")
    with httpx.Client(
        base_url=setup.server.url,
        headers={} if ui else {"Authorization": f"Bearer {key}"},
        cookies={"kawa_key": key or ""} if ui else {},
        timeout=60,
    ) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    expected = setup.run_id if marker == "run_id" else marker
    assert expected in response.text


@pytest.mark.parametrize(
    "route", [r for r, rule in ROUTES.items() if r[0] == "POST" and not rule.ui and rule.roles != PUBLIC]
)
def test_the_key_is_checked_before_the_body(setup: Setup, route: tuple[str, str]) -> None:
    """Without a key, a body that does not fit the route gets 401 too: nothing is said about it."""
    bad = {"sql": 5, "version": "x", "params": 5, "user_id": [1], "context": 7, "batch": 3, "keys": 1}
    response = httpx.post(setup.server.url + url_of(route[1], setup), json=bad, timeout=60)
    assert response.status_code == 401, (route, response.status_code, response.text[:300])
