"""Match: the same filter online (test) and offline (sql over the lake), and clear errors for bad specs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from kawa.streaming import Match, StreamError
from kawa.warehouse import Warehouse

from ._lake import Logged, ingest, logged

NAMES = ["view", "cart_add", "purchase", "search"]
PAGES = [
    "https://shop.example/items/i_1",
    "https://shop.example/c/garden",
    "https://shop.example/",
    "x[1]y",
    "x1y",
]
ODD = [
    "3",
    3,
    3.0,
    2.5,
    True,
    False,
    None,
    "abc",
    {"a": 1},
    [1, 2],
    1e20,
    -7,
    "",
    "ABC",
    18446744073709551615,
]


def _events(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(4)
    out = []
    for i in range(n):
        e: dict[str, Any] = {
            "event_id": f"e{i:04d}",
            "event_name": rnd.choice(NAMES),
            "sync_date": f"2025-09-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "keys": {"user_id": rnd.choice(["u1", "u2", 7, 12])},
        }
        if rnd.random() < 0.8:
            e["page"] = rnd.choice(PAGES)
        if rnd.random() < 0.6:
            e["item_id"] = rnd.choice(["i_1", "i_2", 5, 17])
            e["price"] = rnd.choice([5, 9.99, 10, 10.0, 24.5, 100])
        if rnd.random() < 0.3:
            e["quantity"] = rnd.choice([1, 2, 3])
        if rnd.random() < 0.7:
            e["page_type"] = rnd.choice(["item", "home", "category", "search"])
        if rnd.random() < 0.8:
            e["results"] = rnd.choice(ODD)
        if rnd.random() < 0.5:
            e["context"] = {"campaign": {"source": rnd.choice(["mail", "ads", 1, None])}}
        out.append(e)
    return out


SPECS: list[dict[str, Any]] = [
    {"event_name": "view"},
    {"event_name": ["view", "cart_add"]},
    {"event_name": {"ne": "view"}},
    {"event_name": {"in": ["purchase"]}, "price": {"gte": 10}},
    {"page": {"glob": "https://shop.example/items/*"}},
    {"page": {"glob": "*/c/*"}},
    {"page": {"glob": "x[[]1]y"}},
    {"page": {"glob": "x[1]y"}},
    {"page": {"glob": "x[!a-z]?"}},
    {"page": {"exists": False}},
    {"page": {"gt": "https://shop.example/c"}},
    {"item_id": 5},
    {"item_id": ["i_1", 17]},
    {"keys.user_id": 7},
    {"keys.user_id": {"ne": "u1"}},
    {"price": 10},
    {"price": {"gt": 9.99, "lte": 24.5}},
    {"price": {"ne": 10}},
    {"quantity": {"gte": 2}},
    {"quantity": [1, 3]},
    {"page_type": "item"},
    {"page_type": {"ne": "item"}},
    {"page_type": {"glob": "c*"}},
    {"results": 3},
    {"results": "3"},
    {"results": True},
    {"results": [False, "abc", 2.5]},
    {"results": {"gt": 2}},
    {"results": {"lt": "b"}},
    {"results": {"ne": 3}},
    {"results": {"exists": True}},
    {"results": {"exists": False}},
    {"results": 18446744073709551615},
    {"results": 1e20},
    {"context.campaign.source": "mail"},
    {"context.campaign.source": {"exists": True}},
    {"context.campaign": {"exists": True}},
    {"context.campaign.source": 1, "event_name": "view"},
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, list[Logged]]:
    root = tmp_path_factory.mktemp("match")
    warehouse = ingest(root, _events(600))
    return warehouse, logged(root)


@pytest.mark.parametrize("spec", SPECS, ids=[repr(s) for s in SPECS])
def test_online_and_offline_select_the_same_events(
    lake: tuple[Warehouse, list[Logged]], spec: dict[str, Any]
) -> None:
    warehouse, rows = lake
    match = Match.from_spec(spec)
    online = sorted(r.event_id for r in rows if match.test(r.event))
    offline = sorted(
        warehouse.query(f"SELECT event_id FROM events WHERE {match.sql()}").column(0).to_pylist()
    )
    assert online == offline
    # Every spec here selects some events and leaves out others, so a filter that ignored its condition fails.
    assert 0 < len(online) < len(rows)


def test_conditions_mean_what_they_say() -> None:
    m = Match.from_spec({"event_name": ["view", "cart_add"], "price": {"gte": 10, "lt": 20}})
    assert m.test({"event_name": "view", "price": 10})
    assert m.test({"event_name": "cart_add", "price": 19.99})
    assert not m.test({"event_name": "view", "price": 20})
    assert not m.test({"event_name": "purchase", "price": 15})
    assert not m.test({"event_name": "view"})  # a missing field fails a comparison
    typed = Match.from_spec({"results": 3})
    assert (
        typed.test({"results": 3.0})
        and not typed.test({"results": "3"})
        and not typed.test({"results": True})
    )
    nested = Match.from_spec({"context.campaign.source": "mail"})
    assert nested.test({"context": {"campaign": {"source": "mail"}}})
    assert not nested.test({"context": {"campaign": "mail"}}) and not nested.test({"context": None})
    assert Match.from_spec(None).test({}) and Match.from_spec({}).matches_all
    ne = Match.from_spec({"page_type": {"ne": "item"}})
    assert ne.test({"page_type": "home"}) and not ne.test({}) and not ne.test({"page_type": "item"})


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"price": "cheap"}, ["'price'", "number"]),
        ({"page": 5}, ["'page'", "text"]),
        ({"page": {"equals": "x"}}, ["'page'", "unknown operator 'equals'"]),
        ({"page": {"glob": 5}}, ["'page'", "glob"]),
        ({"price": {"glob": "1*"}}, ["'price'", "glob"]),
        ({"page-type": "item"}, ["'page-type'", "plain name"]),
        ({"sync_date": {"gt": "2025"}}, ["'sync_date'", "t_us"]),
        ({"keys.api_key": "k"}, ["'keys.api_key'", "write keys"]),
        ({"page.host": "x"}, ["'page.host'", "no fields inside"]),
        ({"results": {"in": []}}, ["'results'", "non-empty list"]),
        ({"results": {"exists": "yes"}}, ["'results'", "true or false"]),
        ({"results": {"gt": True}}, ["'results'", "text or a number"]),
        ({"results": {"a": 1}}, ["'results'", "unknown operator 'a'"]),
        ({"results": {}}, ["'results'", "empty condition"]),
        ({"quantity": {"lt": "3"}}, ["'quantity'", "number"]),
        (["event_name"], ["mapping"]),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec: Any, words: list[str]) -> None:
    with pytest.raises(StreamError) as err:
        Match.from_spec(spec)
    for word in words:
        assert word in str(err.value)


def test_sql_quotes_operands(tmp_path: Path) -> None:
    warehouse = ingest(tmp_path, [{"event_name": "it's", "keys": {"user_id": "u"}, "note": "a'b"}])
    for spec in ({"event_name": "it's"}, {"note": "a'b"}, {"note": {"glob": "a'*"}}):
        sql = Match.from_spec(spec).sql()
        assert warehouse.query(f"SELECT count(*) FROM events WHERE {sql}").column(0).to_pylist() == [1]
