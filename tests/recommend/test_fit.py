"""Item similarity and per-user lists on small hand-made event tables with known answers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kawa.recommend import Options, fit
from kawa.warehouse import Warehouse
from tests.features._events import DAY, T0, ev, new_warehouse

from ._reference import baskets, similarity


def _views(pairs: dict[str, list[str]]) -> list[dict[str, Any]]:
    """A view of each listed item by each user, a minute apart, in the order given."""
    out, t = [], T0
    for user, items in pairs.items():
        for item in items:
            t += DAY / 1440
            out.append(ev("view", t, user, session=f"s-{user}", item_id=item))
    return out


# Every user views two items, so each basket has the same size and the textbook formulas hold:
# A is viewed by u1-u4, X by u1 only, Y by u2, u3 and u5-u7, Z by u4-u6.
TEXTBOOK = {
    "u1": ["A", "X"],
    "u2": ["A", "Y"],
    "u3": ["A", "Y"],
    "u4": ["A", "Z"],
    "u5": ["Y", "Z"],
    "u6": ["Y", "Z"],
    "u7": ["Y", "W"],
}


def _neighbours(warehouse: Warehouse, item: str, **options: Any) -> dict[str, float]:
    table = fit(warehouse, Options(**options)).item_similarity.to_pylist()
    return {r["similar_item_id"]: r["similarity"] for r in table if r["item_id"] == item}


def test_cosine_and_jaccard_have_their_textbook_values_and_rank_differently(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, _views(TEXTBOOK))
    cosine = _neighbours(warehouse, "A")
    # |A and B| / sqrt(|A| |B|): X 1/sqrt(4*1), Y 2/sqrt(4*5), Z 1/sqrt(4*3)
    assert cosine == pytest.approx({"X": 0.5, "Y": 2 / 20**0.5, "Z": 1 / 12**0.5})
    jaccard = _neighbours(warehouse, "A", similarity="jaccard")
    # |A and B| / |A or B|: X 1/4, Y 2/7, Z 1/6
    assert jaccard == pytest.approx({"X": 1 / 4, "Y": 2 / 7, "Z": 1 / 6})
    # Cosine favours X, seen once and always with A; Jaccard the better-supported Y.
    assert max(cosine, key=cosine.__getitem__) == "X"
    assert max(jaccard, key=jaccard.__getitem__) == "Y"
    ranks = fit(warehouse, Options()).item_similarity.to_pylist()
    assert [r["similar_item_id"] for r in ranks if r["item_id"] == "A"] == ["X", "Y", "Z"]
    assert [r["rank"] for r in ranks if r["item_id"] == "A"] == [1, 2, 3]
    assert {r["together"] for r in ranks if r["item_id"] == "A" and r["similar_item_id"] == "Y"} == {2}
    assert len(_neighbours(warehouse, "A", neighbours=2)) == 2


def _random_events(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for k in range(400):
        user = f"u{rng.randrange(25)}"
        out.append(
            ev(
                rng.choice(["view", "view", "view", "cart_add", "purchase", "search"]),
                T0 + k * DAY / 100,
                user,
                session=f"{user}-{rng.randrange(3)}",
                item_id=f"i{min(rng.randrange(12), rng.randrange(12))}",
            )
        )
    return out


@pytest.mark.parametrize("scope", ["user", "session"])
@pytest.mark.parametrize("kind", ["cosine", "jaccard"])
def test_weighted_similarity_matches_the_reference(tmp_path: Path, kind: str, scope: str) -> None:
    """Weights (strongest event per basket and item) and the 1 / basket-size damping, as documented."""
    events = _random_events(3)
    table = fit(new_warehouse(tmp_path, events), Options(similarity=kind, scope=scope, neighbours=100))
    data = baskets(events, scope=scope)
    rows = table.item_similarity.to_pylist()
    assert len(rows) > 50
    for row in rows:
        assert row["similarity"] == pytest.approx(
            similarity(data, row["item_id"], row["similar_item_id"], kind)
        )
    for item in {r["item_id"] for r in rows}:
        mine = [r["similarity"] for r in rows if r["item_id"] == item]
        assert mine == sorted(mine, reverse=True)


def test_scores_add_up_similarity_to_the_users_recent_items(tmp_path: Path) -> None:
    events = _random_events(5)
    fitted = fit(new_warehouse(tmp_path, events), Options(recent=3, neighbours=100, fill_popular=False), n=50)
    sims = {(r["item_id"], r["similar_item_id"]): r["similarity"] for r in fitted.item_similarity.to_pylist()}
    user = "u7"
    latest: dict[str, tuple[Any, float]] = {}
    for e in events:
        if e["keys"]["user_id"] == user and e["event_name"] in ("view", "cart_add", "purchase"):
            w = {"view": 1.0, "cart_add": 3.0, "purchase": 5.0}[e["event_name"]]
            seen = latest.get(e["item_id"], (e["sync_date"], 0.0))
            latest[e["item_id"]] = (max(seen[0], e["sync_date"]), max(seen[1], w))
    recent = sorted(latest, key=lambda i: latest[i][0], reverse=True)[:3]
    bought = {e["item_id"] for e in events if e["keys"]["user_id"] == user and e["event_name"] == "purchase"}
    expected = {}
    for (a, b), s in sims.items():
        if a in recent and b not in bought:
            expected[b] = expected.get(b, 0.0) + latest[a][1] * s
    got = {r["item_id"]: r["score"] for r in fitted.user_recommendations.to_pylist() if r["user_id"] == user}
    assert got == pytest.approx(expected)


def test_bought_items_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    events = _views({"u1": ["A", "B", "C"], "u2": ["A", "B", "C"], "u3": ["A", "B"]})
    events.append(ev("purchase", T0 + 2 * DAY, "u3", session="s-u3", item_id="A"))
    warehouse = new_warehouse(tmp_path, events)
    lists = fit(warehouse, Options()).user_recommendations.to_pylist()
    mine = [r["item_id"] for r in lists if r["user_id"] == "u3"]
    # B is u3's own item, not bought: it may be shown again (it is similar to A); A may not.
    assert "A" not in mine and "C" in mine
    kept = fit(warehouse, Options(exclude_purchased=False)).user_recommendations.to_pylist()
    assert "A" in [r["item_id"] for r in kept if r["user_id"] == "u3"]


def test_short_lists_are_filled_with_popular_items_the_user_has_not_bought(tmp_path: Path) -> None:
    events = _views({"u1": ["A", "B"], "u2": ["A", "B"], "u3": ["C"], "u4": ["C"], "u5": ["D"], "u6": ["E"]})
    # u1 bought C in an earlier session: with session scope it is similar to nothing u1 viewed since.
    events.append(ev("purchase", T0, "u1", session="s-old", item_id="C"))
    fitted = fit(new_warehouse(tmp_path, events), Options(scope="session"), n=4)
    assert [r["item_id"] for r in fitted.popular_items.to_pylist()] == ["C", "A", "B", "D", "E"]
    u1 = [(r["item_id"], r["via"]) for r in fitted.user_recommendations.to_pylist() if r["user_id"] == "u1"]
    # B and A (each similar to the other) first, then the most popular items u1 has not bought.
    assert sorted(u1[:2]) == [("A", "similar"), ("B", "similar")]
    assert u1[2:] == [("D", "popular"), ("E", "popular")]
    plain = fit(new_warehouse(tmp_path / "plain", events), Options(scope="session", fill_popular=False), n=4)
    assert {r["via"] for r in plain.user_recommendations.to_pylist()} == {"similar"}


def test_anonymous_visitors_teach_similarity_but_get_no_list(tmp_path: Path) -> None:
    events = [
        {**ev("view", T0 + k * DAY / 24, None, item_id=item), "keys": {"visitor_id": f"v{k // 2}"}}
        for k, item in enumerate(["A", "B", "A", "B", "A", "B"])
    ]
    events.append(ev("view", T0 + DAY, "u1", session="s1", item_id="A"))
    fitted = fit(new_warehouse(tmp_path, events), Options())
    assert {(r["item_id"], r["similar_item_id"]) for r in fitted.item_similarity.to_pylist()} == {
        ("A", "B"),
        ("B", "A"),
    }
    lists = fitted.user_recommendations.to_pylist()
    assert [(r["user_id"], r["item_id"]) for r in lists if r["via"] == "similar"] == [("u1", "B")]
    assert {r["user_id"] for r in lists} == {"u1"}


def test_only_events_before_the_cutoff_are_read(tmp_path: Path) -> None:
    events = _random_events(7)
    cutoff = T0 + 2 * DAY
    early = [e for e in events if e["sync_date"] < cutoff]
    assert 0 < len(early) < len(events)
    on_all = fit(new_warehouse(tmp_path / "all", events), Options(), before=cutoff)
    on_early = fit(new_warehouse(tmp_path / "early", early), Options())
    for name in ("item_similarity", "user_recommendations", "popular_items"):
        assert _rows(getattr(on_all, name)) == _rows(getattr(on_early, name)), name
    on_late = fit(new_warehouse(tmp_path / "late", events), Options())
    assert _rows(on_late.item_similarity) != _rows(on_early.item_similarity)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows with numbers rounded: sums may differ in the last bit with the order DuckDB adds in."""
    return [{k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()} for r in table.to_pylist()]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"similarity": "pearson"}, "similarity='pearson' is not known; use one of cosine, jaccard"),
        ({"scope": "visit"}, "scope='visit' is not known"),
        ({"neighbours": 0}, "neighbours=0 must be a whole number of at least 1"),
        ({"seen": -1}, "seen=-1.0 must be a number of at least 0"),
        ({"weights": {}}, "weights is empty"),
        ({"weights": {"view": -1}}, "weights['view']=-1 must be a number above 0"),
        ({"recent": "many"}, "Expected `int`, got `str` - at `$.recent`"),
    ],
)
def test_bad_options_say_what_to_change(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Options.from_params(options)
    assert message in str(caught.value)


def test_options_made_in_python_are_checked_too() -> None:
    """The SQL is built from these values, so a wrong type is refused, not formatted into a query."""
    with pytest.raises(ValueError, match="max_basket='9; DROP' must be a whole number"):
        Options(max_basket="9; DROP")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"recent=2\.5 must be a whole number"):
        Options(recent=2.5)  # type: ignore[arg-type]
