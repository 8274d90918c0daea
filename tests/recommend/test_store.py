"""Publishing lists to the prediction store and reading them back, with the popular fallback."""

from __future__ import annotations

import pyarrow as pa
import pytest

from kawa.recommend.store import MODEL, POPULAR, NotPublished, publish, recommendations_for
from kawa.serving.store import PredictionStore, namespace
from kawa.stores.online.memory import MemoryOnlineStore


def _lists(rows: dict[str, list[str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"user_id": user, "item_id": item, "score": 1.0 / rank, "via": "similar", "rank": rank}
            for user, items in rows.items()
            for rank, item in enumerate(items, start=1)
        ]
    )


POPULAR_ITEMS = pa.Table.from_pylist(
    [{"item_id": f"p{r}", "score": 100.0 - r, "rank": r} for r in range(1, 31)]
)


def test_each_user_reads_their_list_and_others_the_popular_items() -> None:
    online = MemoryOnlineStore()
    counts = publish(online, "shop", _lists({"u1": ["a", "b", "c"], "u2": ["d"]}), POPULAR_ITEMS, n=20)
    assert counts == {"users": 2, "popular": 20, "removed": 0, "version": 1}
    store = PredictionStore(online)
    mine = recommendations_for(store, "shop", "u1", 2)
    assert mine["source"] == "personal" and mine["n"] == 2 and mine["capped"] is False
    assert mine["items"] == [
        {"item_id": "a", "score": 1.0, "via": "similar"},
        {"item_id": "b", "score": 0.5, "via": "similar"},
    ]
    assert mine["version"] == 1 and mine["computed_at"].endswith("Z")
    other = recommendations_for(store, "shop", "stranger", 3)
    assert other["source"] == "popular"
    assert [i["item_id"] for i in other["items"]] == ["p1", "p2", "p3"]
    assert {i["via"] for i in other["items"]} == {"popular"}
    # Another project sees none of it.
    with pytest.raises(NotPublished, match="no recommendations for project 'other' yet"):
        recommendations_for(store, "other", "u1", 3)


def test_n_is_capped_at_what_was_stored_and_must_be_positive() -> None:
    online = MemoryOnlineStore()
    publish(online, "shop", _lists({"u1": ["a", "b", "c"]}), POPULAR_ITEMS, n=5)
    store = PredictionStore(online)
    capped = recommendations_for(store, "shop", "u1", 50)
    assert capped["n"] == 3 and capped["capped"] is True and len(capped["items"]) == 3
    popular = recommendations_for(store, "shop", "nobody", 50)
    assert popular["n"] == 5 and popular["capped"] is True
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"n={bad}: ask for at least 1 item"):
            recommendations_for(store, "shop", "u1", bad)


def test_a_publication_replaces_the_last_one_whole() -> None:
    online = MemoryOnlineStore()
    publish(online, "shop", _lists({"u1": ["a"], "u2": ["b"], "u3": ["c"]}), POPULAR_ITEMS, n=3)
    counts = publish(online, "shop", _lists({"u2": ["x", "y"]}), POPULAR_ITEMS.slice(5), n=3)
    assert counts == {"users": 1, "popular": 3, "removed": 2, "version": 2}
    store = PredictionStore(online)
    assert recommendations_for(store, "shop", "u1", 5)["source"] == "popular"
    assert [i["item_id"] for i in recommendations_for(store, "shop", "u1", 5)["items"]] == ["p6", "p7", "p8"]
    second = recommendations_for(store, "shop", "u2", 5)
    assert [i["item_id"] for i in second["items"]] == ["x", "y"] and second["version"] == 2
    assert sorted(key for key, _ in online.scan(namespace("shop", MODEL))) == [POPULAR, "u2"]


def test_a_user_named_like_the_reserved_key_cannot_replace_the_popular_items() -> None:
    online = MemoryOnlineStore()
    publish(online, "shop", _lists({POPULAR: ["a"], "u1": ["b"]}), POPULAR_ITEMS, n=2)
    answer = recommendations_for(PredictionStore(online), "shop", POPULAR, 5)
    assert answer["source"] == "popular" and [i["item_id"] for i in answer["items"]] == ["p1", "p2"]
