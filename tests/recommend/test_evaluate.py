"""The time-split holdout: fitted on the events before the cutoff only, scored on the next period."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from kawa.recommend import Options, evaluate, fit
from kawa.recommend.factorise import svd_lists
from kawa.recommend.fit import session
from tests.features._events import DAY, T0, ev, new_warehouse

from ._reference import ranking_metrics

CUTOFF = T0 + 7 * DAY


def _shop(seed: int, days: int = 10) -> list[dict[str, Any]]:
    """Users who each like one of three item groups, over `days` days."""
    rng = random.Random(seed)
    out = []
    for k in range(1500):
        user = rng.randrange(40)
        group = user % 3
        item = (
            f"g{group}-{rng.randrange(6)}"
            if rng.random() < 0.85
            else f"g{rng.randrange(3)}-{rng.randrange(6)}"
        )
        name = rng.choices(["view", "cart_add", "purchase"], weights=[8, 2, 1])[0]
        out.append(
            ev(name, T0 + k * days * DAY / 1500, f"u{user}", session=f"u{user}-{k // 40}", item_id=item)
        )
    # A user seen only after the cutoff: no list can exist for them, so they are not measured.
    out.append(ev("purchase", CUTOFF + DAY, "newcomer", session="n", item_id="g0-1"))
    return out


def _holdout(events: list[dict[str, Any]], horizon_days: int) -> dict[str, set[str]]:
    """What each user with earlier items bought in the horizon, less what they had bought before."""
    before = [e for e in events if e["sync_date"] < CUTOFF]
    known = {e["keys"]["user_id"] for e in before if e["event_name"] in ("view", "cart_add", "purchase")}
    bought = {(e["keys"]["user_id"], e["item_id"]) for e in before if e["event_name"] == "purchase"}
    out: dict[str, set[str]] = {}
    for e in events:
        user, item = e["keys"]["user_id"], e["item_id"]
        in_horizon = CUTOFF <= e["sync_date"] < CUTOFF + horizon_days * DAY
        if in_horizon and e["event_name"] == "purchase" and user in known and (user, item) not in bought:
            out.setdefault(user, set()).add(item)
    return out


def test_metrics_are_recall_and_ndcg_of_the_next_periods_purchases(tmp_path: Path) -> None:
    events = _shop(1)
    result = evaluate(
        new_warehouse(tmp_path, events), Options(), cutoff=CUTOFF, horizon_days=2, keep_fit=True
    )
    relevant = _holdout(events, 2)
    assert result.users == len(relevant) > 10 and "newcomer" not in relevant
    assert result.relevant == sum(len(v) for v in relevant.values())
    assert result.fitted is not None
    lists: dict[str, list[str]] = {}
    for row in result.fitted.user_recommendations.to_pylist():
        lists.setdefault(row["user_id"], []).append(row["item_id"])
    recall, ndcg = ranking_metrics(lists, relevant, 10)
    assert result.metrics["cf_recall"] == pytest.approx(recall)
    assert result.metrics["cf_ndcg"] == pytest.approx(ndcg)
    # The popularity baseline: the same popular list for everyone, less what each user bought.
    popular = [r["item_id"] for r in result.fitted.popular_items.to_pylist()]
    bought = {
        (e["keys"]["user_id"], e["item_id"])
        for e in events
        if e["event_name"] == "purchase" and e["sync_date"] < CUTOFF
    }
    baseline = {u: [i for i in popular if (u, i) not in bought] for u in relevant}
    assert (result.metrics["popular_recall"], result.metrics["popular_ndcg"]) == pytest.approx(
        ranking_metrics(baseline, relevant, 10)
    )
    # Users keep to their group: CF finds it, popularity cannot.
    assert result.metrics["cf_recall"] > result.metrics["popular_recall"]
    metrics = result.as_run_metrics()
    assert metrics["recall_at_10"] == result.metrics["cf_recall"]
    assert metrics["popular_ndcg_at_10"] == result.metrics["popular_ndcg"]
    assert metrics["holdout_users"] == result.users


def test_the_fit_reads_only_events_before_the_cutoff(tmp_path: Path) -> None:
    events = _shop(2)
    early = [e for e in events if e["sync_date"] < CUTOFF]
    result = evaluate(new_warehouse(tmp_path / "all", events), Options(), cutoff=CUTOFF, keep_fit=True)
    alone = fit(new_warehouse(tmp_path / "early", early), Options(), n=10)
    assert result.fitted is not None

    def pairs(table: Any) -> list[tuple[str, str, int]]:
        return [(r["user_id"], r["item_id"], r["rank"]) for r in table.to_pylist()]

    assert pairs(result.fitted.user_recommendations) == pairs(alone.user_recommendations)
    # Changing what happens after the horizon changes nothing; within it, only the targets.
    later = [
        *events,
        *(ev("purchase", CUTOFF + 9 * DAY, "u1", session="x", item_id=f"g2-{i}") for i in range(6)),
    ]
    again = evaluate(new_warehouse(tmp_path / "later", later), Options(), cutoff=CUTOFF)
    # Equal up to the order DuckDB sums in (the last bit of a float may differ between two queries).
    assert again.metrics == pytest.approx(result.metrics, rel=1e-12) and again.users == result.users


def test_bad_evaluation_settings_are_refused(tmp_path: Path) -> None:
    warehouse = new_warehouse(tmp_path, _shop(3))
    with pytest.raises(ValueError, match="horizon_days=0 must be at least 1"):
        evaluate(warehouse, Options(), cutoff=CUTOFF, horizon_days=0)
    with pytest.raises(ValueError, match="k=0 must be at least 1"):
        evaluate(warehouse, Options(), cutoff=CUTOFF, k=0)
    with pytest.raises(ValueError, match="has no time zone"):
        evaluate(warehouse, Options(), cutoff=CUTOFF.replace(tzinfo=None))


def test_the_svd_comparison_ranks_unbought_items_from_a_low_rank_fit(tmp_path: Path) -> None:
    events = _shop(4)
    warehouse = new_warehouse(tmp_path, events)
    with session(warehouse, Options(), before=CUTOFF, n=10) as db:
        lists = svd_lists(db, factors=3, n=5, exclude_bought=True).to_pylist()
        kept = svd_lists(db, factors=3, n=5, exclude_bought=False).to_pylist()
    bought = {
        (e["keys"]["user_id"], e["item_id"])
        for e in events
        if e["event_name"] == "purchase" and e["sync_date"] < CUTOFF
    }
    assert lists and not [r for r in lists if (r["user_id"], r["item_id"]) in bought]
    assert [r for r in kept if (r["user_id"], r["item_id"]) in bought]
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in lists:
        by_user.setdefault(row["user_id"], []).append(row)
    for rows in by_user.values():
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    # Three taste groups of six items, three factors: most of a user's top 5 (less what they bought)
    # is from their own group (one in three by chance).
    own = [r["item_id"].startswith(f"g{int(r['user_id'][1:]) % 3}-") for r in lists]
    assert sum(own) / len(own) > 0.6
    result = evaluate(warehouse, Options(), cutoff=CUTOFF, factors=3)
    assert result.metrics["svd_recall"] > result.metrics["popular_recall"]
    assert result.as_run_metrics()["svd_ndcg_at_10"] == result.metrics["svd_ndcg"]
    with (
        pytest.raises(ValueError, match="factors=0 must be at least 1"),
        session(warehouse, Options(), before=None, n=1) as db,
    ):
        svd_lists(db, factors=0, n=5, exclude_bought=True)
