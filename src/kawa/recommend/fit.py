"""Item-to-item collaborative filtering in the warehouse: DuckDB SQL over the events, no loop over users.

One connection builds, as temporary tables, from the events before a cutoff (all of them by default):
`interactions` (user or session, item, weight) -> `item_similarity` (top `neighbours` per item, cosine
or weighted Jaccard over co-occurrence) -> `user_items` (each signed-in user's items: weight, last
time, bought) -> `popular_items` -> `user_recommendations` (top-N per user: items scored by their
similarity to the user's `recent` latest items, bought ones left out, topped up with popular items).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from kawa.recommend.options import Options
from kawa.warehouse import SQLError, Warehouse


@dataclass(frozen=True)
class Fitted:
    """What one fit made, as Arrow tables."""

    item_similarity: pa.Table  # item_id, similar_item_id, similarity, together, rank
    user_recommendations: pa.Table  # user_id, item_id, score, via ('similar' | 'popular'), rank
    popular_items: pa.Table  # item_id, score, rank
    events_before: datetime | None  # the cutoff: only events before it were read (None: all)


def fit(warehouse: Warehouse, options: Options, *, before: datetime | None = None, n: int = 20) -> Fitted:
    """Similar items and the top `n` per user, from the events before `before` (all when None)."""
    with session(warehouse, options, before=before, n=n) as db:
        return collect(db, before)


def collect(db: duckdb.DuckDBPyConnection, before: datetime | None) -> Fitted:
    """The fit's tables from a `session` connection, as Arrow."""
    return Fitted(
        item_similarity=db.sql("SELECT * FROM item_similarity ORDER BY item_id, rank").to_arrow_table(),
        user_recommendations=db.sql(
            "SELECT * FROM user_recommendations ORDER BY user_id, rank"
        ).to_arrow_table(),
        popular_items=db.sql("SELECT * FROM popular_items ORDER BY rank").to_arrow_table(),
        events_before=before,
    )


@contextmanager
def session(
    warehouse: Warehouse, options: Options, *, before: datetime | None, n: int
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection holding the fit's temporary tables, for queries that build on them."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a whole number of at least 1 (items kept per user)")
    with warehouse.connect() as db:
        try:
            for statement in build_sql(options, before=before, n=n):
                db.execute(statement)
        except duckdb.Error as exc:
            raise SQLError(f"computing recommendations failed: {exc}") from None
        yield db


def build_sql(options: Options, *, before: datetime | None, n: int) -> list[str]:
    """The statements that build the fit's tables, in order."""
    o = options
    weights = ", ".join(f"({_literal(name)}, {float(w)!r})" for name, w in sorted(o.weights.items()))
    until = "TRUE" if before is None else f"sync_date < {_timestamp(before)}"
    basket = "keys.session_id" if o.scope == "session" else "coalesce(keys.user_id, keys.visitor_id)"
    return [
        f"""
        CREATE TEMP TABLE item_events AS
        SELECT keys.user_id AS user_id, {basket} AS basket, e.item_id, w.weight, e.event_name, e.sync_date
        FROM events e JOIN (VALUES {weights}) w(event_name, weight) USING (event_name)
        WHERE e.item_id IS NOT NULL AND {until}
        """,
        # Each basket shares one unit of evidence among its items (damp = 1 / its size), so a bot
        # sweeping the catalogue, or one marathon session, weighs what one ordinary shopper does.
        f"""
        CREATE TEMP TABLE interactions AS
        SELECT *, 1.0 / count(*) OVER (PARTITION BY basket) AS damp FROM (
            SELECT basket, item_id, max(weight) AS weight, max(sync_date) AS last_at
            FROM item_events WHERE basket IS NOT NULL GROUP BY basket, item_id
            QUALIFY row_number() OVER (PARTITION BY basket ORDER BY last_at DESC, item_id) <= {o.max_basket}
        )
        """,
        _similarity_sql(o),
        f"""
        CREATE TEMP TABLE user_items AS
        SELECT user_id, item_id, max(weight) AS weight, max(sync_date) AS last_at,
               bool_or(event_name = {_literal(o.purchase_event)}) AS bought
        FROM item_events WHERE user_id IS NOT NULL GROUP BY user_id, item_id
        """,
        f"""
        CREATE TEMP TABLE popular_items AS
        SELECT item_id, sum(weight) AS score, row_number() OVER (ORDER BY sum(weight) DESC, item_id) AS rank
        FROM (SELECT basket, item_id, max(weight) AS weight FROM item_events
              WHERE basket IS NOT NULL
                AND sync_date >= (SELECT max(sync_date) FROM item_events) - INTERVAL {o.popular_days} DAY
              GROUP BY basket, item_id)
        GROUP BY item_id
        """,
        _recommendations_sql(o, n),
    ]


def _similarity_sql(o: Options) -> str:
    """Top `neighbours` per item by cosine or weighted Jaccard over the (damped) co-occurrences."""
    if o.similarity == "cosine":
        similarity = "p.dot / sqrt(a.squares * b.squares)"
    else:  # sum of min over sum of max, where max = a + b - min
        similarity = "p.shared / (a.total + b.total - p.shared)"
    return f"""
        CREATE TEMP TABLE item_similarity AS
        WITH items AS (
            SELECT item_id, sum(damp * weight) AS total, sum(damp * weight * weight) AS squares
            FROM interactions GROUP BY 1
        ), half AS (
            SELECT a.item_id AS a, b.item_id AS b, sum(a.damp * a.weight * b.weight) AS dot,
                   sum(a.damp * least(a.weight, b.weight)) AS shared, count(*) AS together
            FROM interactions a JOIN interactions b ON a.basket = b.basket AND a.item_id < b.item_id
            GROUP BY 1, 2
        ), pairs AS (
            SELECT a AS item_id, b AS similar_item_id, dot, shared, together FROM half
            UNION ALL
            SELECT b, a, dot, shared, together FROM half
        )
        SELECT p.item_id, p.similar_item_id, {similarity} AS similarity, p.together,
               row_number() OVER (PARTITION BY p.item_id ORDER BY {similarity} DESC, p.similar_item_id)
                   AS rank
        FROM pairs p JOIN items a ON a.item_id = p.item_id JOIN items b ON b.item_id = p.similar_item_id
        QUALIFY rank <= {o.neighbours}
    """


def _recommendations_sql(o: Options, n: int) -> str:
    """Top `n` per user: similarity to the user's `recent` items, then popular items to fill up."""
    seen = f"UNION ALL SELECT user_id, weight, item_id, {float(o.seen)} FROM recent" if o.seen > 0 else ""
    # Enough popular items to fill every list even after a user's own purchases are left out.
    enough = (
        f"{n} + coalesce((SELECT max(c) FROM "
        "(SELECT count(*) AS c FROM user_items WHERE bought GROUP BY user_id)), 0)"
    )
    fill = f"""
            UNION ALL
            SELECT u.user_id, p.item_id, p.score, 'popular' AS via, 1 AS tier
            FROM (SELECT DISTINCT user_id FROM user_items) u
            CROSS JOIN (SELECT item_id, score FROM popular_items WHERE rank <= {enough}) p
            ANTI JOIN scored s ON s.user_id = u.user_id AND s.item_id = p.item_id
    """
    bought = "ANTI JOIN user_items x ON x.bought AND x.user_id = c.user_id AND x.item_id = c.item_id"
    return f"""
        CREATE TEMP TABLE user_recommendations AS
        WITH recent AS (
            SELECT user_id, item_id, weight FROM user_items
            QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY last_at DESC, item_id) <= {o.recent}
        ), scored AS (
            SELECT user_id, similar_item_id AS item_id, sum(weight * similarity) AS score
            FROM (SELECT r.user_id, r.weight, s.similar_item_id, s.similarity
                  FROM recent r JOIN item_similarity s ON s.item_id = r.item_id
                  {seen})
            GROUP BY 1, 2
        ), candidates AS (
            SELECT user_id, item_id, score, 'similar' AS via, 0 AS tier FROM scored
            {fill if o.fill_popular else ""}
        )
        SELECT c.user_id, c.item_id, c.score, c.via,
               row_number() OVER (PARTITION BY c.user_id ORDER BY c.tier, c.score DESC, c.item_id) AS rank
        FROM candidates c {bought if o.exclude_purchased else ""}
        QUALIFY rank <= {n}
    """


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"cutoff {moment} has no time zone; pass an aware datetime, e.g. in UTC")
    return f"TIMESTAMPTZ {_literal(moment.isoformat())}"
