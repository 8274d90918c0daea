"""`GET /v1/recommendations/{user_id}` on a real `kawa serve`, after `kawa pipeline run recommendations`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, kawa

pytestmark = pytest.mark.slow

# Shoppers of two tastes: shoes (s1-s3) and books (b1-b3); u9 bought s1 and viewed s2.
SHOPPERS = {
    "u1": ["s1", "s2", "s3"],
    "u2": ["s1", "s2", "s3"],
    "u3": ["s1", "s2"],
    "u4": ["b1", "b2", "b3"],
    "u5": ["b1", "b2", "b3"],
    "u6": ["b1", "b3"],
    "u7": ["b2", "b3"],
}


def _events() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for user, items in SHOPPERS.items():
        for item in items:
            out.append(
                {"event_name": "view", "keys": {"user_id": user, "session_id": f"s-{user}"}, "item_id": item}
            )
    out.append({"event_name": "purchase", "keys": {"user_id": "u9", "session_id": "s-u9"}, "item_id": "s1"})
    out.append({"event_name": "view", "keys": {"user_id": "u9", "session_id": "s-u9"}, "item_id": "s2"})
    return out


@pytest.fixture(scope="module")
def served(server: Server) -> Iterator[Server]:
    (server.root / "pipelines.py").write_text(
        "from kawa.templates.recommend import recommendations  # noqa: F401\n"
    )
    with server.client("write") as client:
        assert client.post("/v1/events", json=_events()).status_code == 200
    expected = sum(map(len, SHOPPERS.values())) + 2
    assert server.wait_for("SELECT count(*) FROM events", [[expected]], timeout=20) == [[expected]]
    yield server


def _get(server: Server, path: str, role: str = "read") -> httpx.Response:
    with server.client(role) as client:
        return client.get(path)


def test_before_the_pipeline_ran_the_answer_says_what_to_do(served: Server) -> None:
    answer = _get(served, "/v1/recommendations/u1")
    assert answer.status_code == 404
    assert "run the recommendations pipeline" in answer.json()["error"]


def test_personal_lists_popular_fallback_and_n(served: Server) -> None:
    ran = kawa("pipeline", "run", "recommendations", "-p", "top_n=4", cwd=served.root, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    u3 = _get(served, "/v1/recommendations/u3?n=2").json()
    assert u3["source"] == "personal" and u3["n"] == 2 and u3["capped"] is False
    # u3 viewed s1 and s2: s3 is what users like u3 also viewed; no book comes before it.
    assert u3["items"][0]["item_id"] == "s3" and u3["items"][0]["via"] == "similar"

    u9 = _get(served, "/v1/recommendations/u9?n=10").json()
    assert u9["source"] == "personal"
    assert "s1" not in [i["item_id"] for i in u9["items"]]  # bought
    assert u9["n"] == len(u9["items"]) <= 4 and u9["capped"] is True  # capped at top_n

    stranger = _get(served, "/v1/recommendations/nobody-we-know").json()
    assert stranger["source"] == "popular" and stranger["user_id"] == "nobody-we-know"
    assert [i["via"] for i in stranger["items"]] == ["popular"] * 4
    assert stranger["items"][0]["item_id"] == "s1"  # three views and a purchase

    # The same list as /v1/predictions serves for the model, for products that read it there.
    raw = _get(served, "/v1/predictions/recommendations/u3").json()
    assert [i["item_id"] for i in raw["score"]][:2] == [i["item_id"] for i in u3["items"]]


def test_bad_n_and_keys_are_refused_clearly(served: Server) -> None:
    for n in ("0", "-1"):
        bad = _get(served, f"/v1/recommendations/u1?n={n}")
        assert bad.status_code == 422
        assert bad.json()["error"] == f"n={n}: ask for at least 1 item, e.g. ?n=10"
    typed = _get(served, "/v1/recommendations/u1?n=many")
    assert typed.status_code == 422 and "query.n" in typed.json()["error"]
    assert _get(served, "/v1/recommendations/u1", role="write").status_code == 403
    assert httpx.get(served.url + "/v1/recommendations/u1").status_code == 401
    other = served.add_project("elsewhere")
    answer = httpx.get(
        served.url + "/v1/recommendations/u1", headers={"Authorization": f"Bearer {other['read_key']}"}
    )
    assert answer.status_code == 404 and "'elsewhere'" in answer.json()["error"]
