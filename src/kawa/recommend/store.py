"""Where recommendations are served from: each user's list in the prediction store, popular items beside it.

A user's top-N is the `score` of a batch prediction of model `recommendations` for that user:
`[{"item_id": "i_0042", "score": 0.61, "via": "similar"}, ...]` (best first; `via` is `popular` for
items that filled up a short list). The popular items are kept under the reserved key `*`, so one read
answers an unknown user. A publication replaces the whole set at once: users no longer listed are
removed in the same atomic write. `version` counts publications (1, 2, ...): these lists are tables,
not registry models.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from kawa.serving.store import Prediction, PredictionStore, namespace, now_rfc3339
from kawa.stores.online import OnlineStore

MODEL = "recommendations"
POPULAR = "*"  # the reserved entity key of the popular items


class NotPublished(LookupError):
    """No recommendations were published for the project yet."""


def publish(
    online: OnlineStore, project: str, recommendations: pa.Table, popular: pa.Table, *, n: int
) -> dict[str, int]:
    """Write every user's list and the top `n` popular items, replacing what was there; returns counts.

    `recommendations` has user_id, item_id, score, via, rank; `popular` item_id, score, rank.
    """
    store = PredictionStore(online)
    ns = namespace(project, MODEL)
    before = store.get(project, MODEL, POPULAR)
    version = 1 if before is None else before.model_version + 1
    stamp = now_rfc3339()
    db = duckdb.connect(config={"threads": 2})
    try:
        db.register("recs", recommendations)
        db.register("popular", popular)
        # One JSON document per user, made by DuckDB: no per-user Python work beyond the store call.
        lists = db.sql(
            """
            SELECT user_id AS key, json_object(
                'score', list(json_object('item_id', item_id, 'score', round(score, 6), 'via', via)
                              ORDER BY rank),
                'model_version', ?, 'computed_at', ?)::VARCHAR AS value
            FROM recs WHERE user_id <> ? GROUP BY user_id
            """,
            params=[version, stamp, POPULAR],
        ).to_arrow_table()
        top = db.sql(
            """
            SELECT coalesce(list(json_object('item_id', item_id, 'score', round(score, 6), 'via', 'popular')
                                 ORDER BY rank), [])::VARCHAR AS items
            FROM (SELECT * FROM popular ORDER BY rank LIMIT ?)
            """,
            params=[n],
        ).fetchall()[0][0]
    finally:
        db.close()
    keys = lists.column("key").to_pylist()
    values = [v.encode() for v in lists.column("value").to_pylist()]
    popular_value = msgspec.json.encode(
        Prediction(score=msgspec.json.decode(top), model_version=version, computed_at=stamp)
    )
    current = set(keys)
    stale = [key for key, _ in online.scan(ns) if key not in current and key != POPULAR]
    online.write({ns: [*zip(keys, values, strict=True), (POPULAR, popular_value)]}, {ns: stale})
    shown = min(n, popular.num_rows)
    return {"users": len(keys), "popular": shown, "removed": len(stale), "version": version}


def recommendations_for(store: PredictionStore, project: str, user_id: str, n: int) -> dict[str, Any]:
    """The user's top `n` (`source` "personal"), or the popular items (`source` "popular") for a user
    with none; `n` above what was stored returns all there is, with `capped` true.

    Raises ValueError for n < 1, and NotPublished when the project has no recommendations yet.
    """
    if n < 1:
        raise ValueError(f"n={n}: ask for at least 1 item, e.g. ?n=10")
    personal = store.get(project, MODEL, user_id) if user_id != POPULAR else None
    if personal is not None and personal.score:
        found, source = personal, "personal"
    else:
        popular = store.get(project, MODEL, POPULAR)
        if popular is None:
            raise NotPublished(
                f"no recommendations for project {project!r} yet; run the recommendations pipeline "
                "(kawa pipeline run recommendations)"
            )
        found, source = popular, "popular"
    items = list(found.score or [])
    return {
        "user_id": user_id,
        "source": source,
        "items": items[:n],
        "n": min(n, len(items)),
        "capped": n > len(items),
        "version": found.model_version,
        "computed_at": found.computed_at,
    }
