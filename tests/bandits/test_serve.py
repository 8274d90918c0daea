"""Bandits through a real `kawa serve`: choose, reward from events, show, and survive a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kawa.stores.metadata import open_metadata
from tests.conftest import Server, kawa

pytestmark = pytest.mark.slow

BANDITS = """
bandits:
  - name: ranking
    arms: [bm25, learned, popular]
    policy: {name: epsilon_greedy, epsilon: 0.1}
    reward_on: {event_name: click}
  - name: coupon
    arms: [free_shipping, ten_percent]
    policy: thompson
    purchase_on: {event_name: purchase}
    window: 24h
    context: [device]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("bandits"))
    (srv.root / "bandits.yaml").write_text(BANDITS)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def choose(server: Server, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    with server.client("read") as client:
        response = client.post(f"/v1/bandits/{name}/choose", json=body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def send(server: Server, *events: dict[str, Any]) -> None:
    with server.client("write") as client:
        response = client.post("/v1/events", json=list(events))
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def bandit(server: Server, name: str) -> dict[str, Any]:
    with server.client("read") as client:
        response = client.get(f"/v1/bandits/{name}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def caught_up(server: Server) -> None:
    """Wait until the reward worker has read (and committed) everything the log holds now."""
    with server.client("read") as client:
        end = client.get("/healthz").json()["event_log_offset"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            worker = client.get("/v1/bandits").json()["worker"]
            if worker["running"] and worker["offset"] >= end:
                return
            time.sleep(0.1)
    raise AssertionError(f"the reward worker did not reach offset {end}: {worker}")


def arms(found: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {a["arm"]: (a["pulls"], a["rewards"]) for a in found["arms"]}


def wait(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_choose_needs_a_read_key_and_good_input(server: Server) -> None:
    url = server.url + "/v1/bandits/ranking/choose"
    assert httpx.post(url).status_code == 401
    with server.client("write") as client:
        refused = client.post("/v1/bandits/ranking/choose")
        assert refused.status_code == 403 and "use a read key or an admin key" in refused.json()["error"]
    with server.client("read") as client:
        missing = client.post("/v1/bandits/nope/choose")
        assert (
            missing.status_code == 404 and "declare it in the project's code or bandits.yaml" in missing.text
        )
        bad = client.post("/v1/bandits/coupon/choose", json={"context": {"devcie": "mobile"}})
        assert bad.status_code == 400 and "unknown context key 'devcie'; its keys are device" in bad.text
        no_context = client.post("/v1/bandits/ranking/choose", json={"context": {"device": "mobile"}})
        assert no_context.status_code == 400 and "takes no context" in no_context.text
        assert client.post("/v1/bandits/ranking/choose", json={"user_id": ""}).status_code == 400
        assert client.post("/v1/bandits/ranking/choose", content=b"{").status_code == 422


def test_a_click_with_the_decision_id_is_rewarded_exactly_once(server: Server) -> None:
    decision = choose(server, "ranking")  # no body: no user, no context
    assert decision["arm"] in ("bm25", "learned", "popular") and len(decision["decision_id"]) == 24
    before = arms(bandit(server, "ranking"))
    assert before[decision["arm"]][0] >= 1
    click = {"event_id": "click-1", "event_name": "click", "keys": {"visitor_id": "v1"}}
    send(server, {**click, "decision_id": decision["decision_id"]})
    wait(lambda: arms(bandit(server, "ranking"))[decision["arm"]][1] == before[decision["arm"]][1] + 1)
    # Sent again, and a second click on the same decision: the worker reads both, counts neither.
    send(server, {**click, "decision_id": decision["decision_id"]})
    send(server, {**click, "event_id": "click-2", "decision_id": decision["decision_id"]})
    caught_up(server)
    after = arms(bandit(server, "ranking"))
    assert sum(r for _, r in after.values()) == sum(r for _, r in before.values()) + 1
    with server.client("read") as client:
        listed = client.get("/v1/bandits/ranking/decisions", params={"limit": 5}).json()["decisions"]
    mine = next(d for d in listed if d["decision_id"] == decision["decision_id"])
    assert mine["reward_event_id"] == "click-1" and mine["reward_kind"] == "decision_id"


def test_a_purchase_by_the_same_user_rewards_the_decision_in_its_context(server: Server) -> None:
    decision = choose(server, "coupon", {"user_id": "u-7", "context": {"device": "mobile"}})
    assert decision["context"] == "device=mobile"
    send(server, {"event_id": "buy-other", "event_name": "purchase", "keys": {"user_id": "u-8"}})
    send(server, {"event_id": "buy-1", "event_name": "purchase", "keys": {"user_id": "u-7"}, "revenue": 30})
    wait(lambda: bandit(server, "coupon")["rewards"] == 1)
    found = bandit(server, "coupon")
    (mobile,) = [c for c in found["contexts"] if c["context"] == "device=mobile"]
    assert {a["arm"]: (a["pulls"], a["rewards"]) for a in mobile["arms"]}[decision["arm"]] == (1, 1)
    assert found["score_name"] == "P(best)" and all(0 <= a["score"] <= 1 for a in found["arms"])


def test_stats_survive_a_restart_and_rewards_keep_coming(server: Server) -> None:
    pending = choose(server, "ranking", {"user_id": "u-1"})
    caught_up(server)
    before = bandit(server, "ranking")
    server.stop()
    server.start()
    assert bandit(server, "ranking")["arms"] == before["arms"]
    # A click on a decision made before the restart counts once; nothing earlier counts again.
    send(
        server,
        {
            "event_id": "late",
            "event_name": "click",
            "keys": {"user_id": "u-1"},
            "decision_id": pending["decision_id"],
        },
    )
    wait(lambda: bandit(server, "ranking")["rewards"] == before["rewards"] + 1)
    caught_up(server)
    assert bandit(server, "ranking")["rewards"] == before["rewards"] + 1


def test_kawa_bandits_show(server: Server) -> None:
    shown = kawa("bandits", "show", cwd=server.root).stdout
    for text in (
        "ranking",
        "epsilon_greedy(epsilon=0.1)",
        "bm25",
        "mean reward",
        "coupon",
        "P(best)",
        "device=mobile",
    ):
        assert text in shown, shown
    data = json.loads(kawa("bandits", "show", "ranking", "--json", cwd=server.root).stdout)
    (ranking,) = data["bandits"]
    assert ranking == bandit(server, "ranking")
    missing = kawa("bandits", "show", "nope", cwd=server.root, check=False)
    assert missing.returncode == 1 and "no bandit 'nope'" in missing.stderr


def test_a_locked_metadata_store_is_a_503_to_retry(server: Server) -> None:
    # Another writer holds the lock past the server's busy timeout (5 s).
    with (
        open_metadata("sqlite", server.root / ".kawa") as store,
        store.begin(),
        server.client("read") as client,
    ):
        locked = client.post("/v1/bandits/ranking/choose")
    assert locked.status_code == 503 and locked.headers["retry-after"] == "1"
    assert "the decision could not be recorded" in locked.json()["error"]
    assert choose(server, "ranking")["arm"]


def test_a_checkpoint_that_cannot_be_written_does_not_stop_the_heartbeat(server: Server) -> None:
    # A folder where the checkpoint's temporary file goes: every commit fails (as on a full disk).
    blocker = server.root / ".kawa" / "eventlog" / "checkpoints" / "bandits.tmp"
    blocker.mkdir(parents=True)
    try:
        send(server, {"event_id": "while-blocked", "event_name": "view", "keys": {"visitor_id": "v1"}})
        time.sleep(6)  # longer than the 5 s a heartbeat may be old before the part counts as dead
        with server.client("read") as client:
            assert client.get("/v1/bandits").json()["worker"]["running"]
    finally:
        blocker.rmdir()
    caught_up(server)  # and the offset is committed again once it can be


def test_the_openapi_schema_documents_the_routes(server: Server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {
        "/v1/bandits",
        "/v1/bandits/{name}",
        "/v1/bandits/{name}/choose",
        "/v1/bandits/{name}/decisions",
    } <= set(paths)


def test_bandits_of_one_project_are_not_another_projects(server: Server, tmp_path: Path) -> None:
    keys = server.add_project("other")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys['read_key']}"}) as client:
        assert client.get("/v1/bandits").json()["bandits"] == []
        assert client.post("/v1/bandits/ranking/choose").status_code == 404
