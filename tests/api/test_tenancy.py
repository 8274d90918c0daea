"""Projects are tenants: keys of one project never write to or read another's data."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Server


def test_projects_see_only_their_own_events(server: Server) -> None:
    other = server.add_project("tenant" + uuid.uuid4().hex[:6])
    name = "iso_" + uuid.uuid4().hex[:8]
    ev = {"event_name": name, "keys": {"user_id": "u"}}
    mine = httpx.post(
        server.url + "/v1/events",
        json=[ev, ev],
        headers={"Authorization": f"Bearer {server.keys['write_key']}"},
    )
    theirs = httpx.post(
        server.url + "/v1/events", json=ev, headers={"Authorization": f"Bearer {other['write_key']}"}
    )
    assert (mine.status_code, theirs.status_code) == (200, 200)
    q = f"SELECT count(*) FROM events WHERE event_name = '{name}'"
    assert server.wait_for(q, [[2]]) == [[2]]
    assert server.wait_for(q, [[1]], key=other["admin_key"]) == [[1]]


def test_sql_cannot_reach_other_projects_or_the_host(server: Server) -> None:
    lake = server.root / ".kawa" / "lake"
    for query in (
        f"SELECT * FROM read_parquet('{lake}/events/**/*.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        f"ATTACH '{server.root}/x.duckdb'",
        f"COPY (SELECT 1) TO '{server.root}/out.csv'",
        "INSTALL httpfs",
    ):
        r = httpx.post(
            server.url + "/v1/sql",
            json={"sql": query},
            headers={"Authorization": f"Bearer {server.keys['admin_key']}"},
        )
        assert r.status_code == 400, (query, r.text)
    assert not (server.root / "out.csv").exists()


def test_only_admin_keys_run_sql_and_read_keys_list_tables(server: Server) -> None:
    # A read key reads tables and their rows (as the UI's read-only warehouse page does); SQL is the admin's.
    for role, sql_status, list_status in (("write", 403, 403), ("read", 403, 200), ("admin", 200, 200)):
        key = server.keys[f"{role}_key"]
        r = httpx.post(
            server.url + "/v1/sql", json={"sql": "SELECT 1"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == sql_status, (role, r.text)
        r = httpx.get(server.url + "/v1/tables", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == list_status, (role, r.text)
    assert httpx.post(server.url + "/v1/sql", json={"sql": "SELECT 1"}).status_code == 401


def test_a_revoked_key_stops_working_at_once(server: Server) -> None:
    from tests.conftest import kawa

    extra = server.add_project("revoke" + uuid.uuid4().hex[:6])
    headers = {"Authorization": f"Bearer {extra['write_key']}"}
    ev = {"event_name": "r", "keys": {"user_id": "u"}}
    assert httpx.post(server.url + "/v1/events", json=ev, headers=headers).status_code == 200
    out = kawa("keys", "revoke", extra["write_key"], cwd=server.root)
    assert "write_key=kw_w_" in out.stdout
    assert httpx.post(server.url + "/v1/events", json=ev, headers=headers).status_code == 401
    new_key = out.stdout.split("write_key=")[1].split()[0]
    assert (
        httpx.post(
            server.url + "/v1/events", json=ev, headers={"Authorization": f"Bearer {new_key}"}
        ).status_code
        == 200
    )
