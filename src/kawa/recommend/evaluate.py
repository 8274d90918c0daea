"""Time-split holdout evaluation: fit on the events before a cutoff, score the next period's purchases.

The users measured are those with items before the cutoff (the ones a personal list exists for) who
buy (or do a `targets` event on) an item in the `horizon_days` after it; an item they had already
bought before the cutoff does not count when bought items are left out of recommendations. The
collaborative-filtering lists and two baselines, popular items (the most popular items the user has not
bought) and seen items (the user's own unbought items, strongest event first), are scored with recall@k
(hits / relevant items) and NDCG@k (binary relevance), averaged over users; new_recall is recall on the
relevant items the user had no event about before the cutoff; coverage is the share of the items seen
before the cutoff that appear in some measured user's top k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kawa.recommend.factorise import svd_lists
from kawa.recommend.fit import Fitted, collect, session
from kawa.recommend.options import Options
from kawa.warehouse import Warehouse

# What is measured: the fit's lists, and two baselines built for the measured users.
METHODS = {"cf": "user_recommendations", "popular": "popular_lists", "seen": "seen_lists"}
_ORDER = [*METHODS, "svd"]


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics of one fit next to the baselines', and the fit itself when asked for."""

    cutoff: datetime
    horizon_days: int
    k: int
    users: int  # users measured
    relevant: int  # (user, item) pairs to find
    metrics: dict[str, float]  # "<method>_<metric>": cf|popular|seen|svd, recall|ndcg|new_recall|coverage
    seconds: float
    fitted: Fitted | None = field(default=None, repr=False)

    def as_run_metrics(self) -> dict[str, float]:
        """Flat names for `ctx.log_metric`: recall_at_10, ndcg_at_10, popular_recall_at_10, ..."""
        k = self.k
        out: dict[str, float] = {"holdout_users": float(self.users), "holdout_items": float(self.relevant)}
        for method in sorted({m.split("_", 1)[0] for m in self.metrics}, key=_ORDER.index):
            prefix = "" if method == "cf" else f"{method}_"
            for metric in ("recall", "ndcg", "new_recall", "coverage"):
                out[f"{prefix}{metric}_at_{k}"] = self.metrics[f"{method}_{metric}"]
        return out


def evaluate(
    warehouse: Warehouse,
    options: Options,
    *,
    cutoff: datetime,
    horizon_days: int = 7,
    k: int = 10,
    targets: tuple[str, ...] | None = None,
    keep_fit: bool = False,
    factors: int = 0,
) -> Evaluation:
    """Fit on events before `cutoff`; measure the top `k` against the next `horizon_days` of `targets`.

    `factors` > 0 also measures a truncated SVD of that rank (`svd`), from the same interactions.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days} must be at least 1 (days after the cutoff measured)")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k} must be at least 1 (the list length measured, e.g. 10)")
    targets = targets or (options.purchase_event,)
    names = ", ".join("'" + t.replace("'", "''") + "'" for t in targets)
    until = cutoff + timedelta(days=horizon_days)
    started = time.perf_counter()
    with session(warehouse, options, before=cutoff, n=k) as db:
        already = "ANTI JOIN user_items b ON b.bought AND b.user_id = t.user_id AND b.item_id = t.item_id"
        db.execute(
            f"""
            CREATE TEMP TABLE relevant AS
            SELECT DISTINCT t.user_id, t.item_id FROM (
                SELECT keys.user_id AS user_id, item_id FROM events
                WHERE event_name IN ({names}) AND item_id IS NOT NULL AND keys.user_id IS NOT NULL
                  AND sync_date >= ? AND sync_date < ?
            ) t
            SEMI JOIN user_items h ON h.user_id = t.user_id
            {already if options.exclude_purchased else ""}
            """,
            [cutoff, until],
        )
        db.execute(_baselines(options, k))
        metrics: dict[str, float] = {}
        methods = dict(METHODS)
        if factors > 0:
            lists = svd_lists(db, factors=factors, n=k, exclude_bought=options.exclude_purchased)
            db.register("svd_lists", lists)
            methods["svd"] = "svd_lists"
        for method, table in methods.items():
            metrics.update(_scores(db, method, table, k))
        counts = db.sql("SELECT count(DISTINCT user_id) AS u, count(*) AS r FROM relevant").fetchall()[0]
        fitted = collect(db, cutoff) if keep_fit else None
    users, relevant = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    return Evaluation(
        cutoff=cutoff,
        horizon_days=horizon_days,
        k=k,
        users=users,
        relevant=relevant,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        fitted=fitted,
    )


def _baselines(options: Options, k: int) -> str:
    """The two baselines' lists for the measured users: popular items, and the user's own items."""
    mine = "b.user_id = u.user_id AND b.item_id = p.item_id"
    exclude = f"ANTI JOIN user_items b ON b.bought AND {mine}" if options.exclude_purchased else ""
    not_bought = "AND NOT bought" if options.exclude_purchased else ""
    return f"""
        CREATE TEMP TABLE popular_lists AS
        SELECT u.user_id, p.item_id, row_number() OVER (PARTITION BY u.user_id ORDER BY p.rank) AS rank
        FROM (SELECT DISTINCT user_id FROM relevant) u CROSS JOIN popular_items p
        {exclude}
        QUALIFY rank <= {int(k)};
        CREATE TEMP TABLE seen_lists AS
        SELECT user_id, item_id,
               row_number() OVER (PARTITION BY user_id ORDER BY weight DESC, last_at DESC, item_id) AS rank
        FROM user_items WHERE user_id IN (SELECT user_id FROM relevant) {not_bought}
        QUALIFY rank <= {int(k)};
        CREATE TEMP TABLE relevant_new AS
        SELECT * FROM relevant r ANTI JOIN user_items h ON h.user_id = r.user_id AND h.item_id = r.item_id;
    """


def _scores(db: object, method: str, table: str, k: int) -> dict[str, float]:
    """Mean recall@k and NDCG@k over the measured users, and the catalogue coverage of the lists."""
    row = db.sql(  # type: ignore[attr-defined]
        f"""
        WITH wanted AS (SELECT user_id, count(*) AS n FROM relevant GROUP BY 1),
        ideal AS (
            SELECT i AS n, sum(1.0 / log2(i + 1)) OVER (ORDER BY i) AS idcg FROM range(1, {int(k)} + 1) t(i)
        ), hits AS (
            SELECT r.user_id, count(*) AS hits, sum(1.0 / log2(r.rank + 1)) AS dcg
            FROM {table} r JOIN relevant t ON t.user_id = r.user_id AND t.item_id = r.item_id
            WHERE r.rank <= {int(k)} GROUP BY 1
        ), per_user AS (
            SELECT coalesce(h.hits, 0) / w.n AS recall,
                   coalesce(h.dcg, 0) / d.idcg AS ndcg
            FROM wanted w LEFT JOIN hits h USING (user_id) JOIN ideal d ON d.n = least(w.n, {int(k)})
        ), new_wanted AS (SELECT user_id, count(*) AS n FROM relevant_new GROUP BY 1),
        new_hits AS (
            SELECT r.user_id, count(*) AS hits
            FROM {table} r JOIN relevant_new t ON t.user_id = r.user_id AND t.item_id = r.item_id
            WHERE r.rank <= {int(k)} GROUP BY 1
        )
        SELECT (SELECT avg(recall) FROM per_user), (SELECT avg(ndcg) FROM per_user),
               (SELECT avg(coalesce(h.hits, 0) / w.n) FROM new_wanted w LEFT JOIN new_hits h USING (user_id)),
               (SELECT count(DISTINCT item_id) FROM {table} WHERE rank <= {int(k)}
                    AND user_id IN (SELECT user_id FROM wanted))
               / (SELECT count(DISTINCT item_id) FROM interactions)
        """
    ).fetchall()[0]
    recall, ndcg, new_recall, coverage = row
    return {
        f"{method}_recall": float(recall or 0.0),
        f"{method}_ndcg": float(ndcg or 0.0),
        f"{method}_new_recall": float(new_recall or 0.0),
        f"{method}_coverage": float(coverage or 0.0),
    }
