"""The documented formulas written the slow, obvious way in Python, to check the SQL against."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

WEIGHTS = {"view": 1.0, "cart_add": 3.0, "purchase": 5.0}


def baskets(
    events: Iterable[Mapping[str, Any]], weights: Mapping[str, float] = WEIGHTS, scope: str = "user"
) -> dict[str, dict[str, float]]:
    """basket -> item -> the strongest weight of the basket's events about the item."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for e in events:
        keys = e["keys"]
        basket = (
            keys.get("session_id") if scope == "session" else keys.get("user_id") or keys.get("visitor_id")
        )
        if basket is None or e.get("item_id") is None or e["event_name"] not in weights:
            continue
        item, w = e["item_id"], weights[e["event_name"]]
        out[basket][item] = max(out[basket].get(item, 0.0), w)
    return out


def similarity(data: dict[str, dict[str, float]], a: str, b: str, kind: str) -> float:
    """Cosine or weighted Jaccard of items `a` and `b`, each basket weighted 1 / its size."""
    dot = shared = sq_a = sq_b = tot_a = tot_b = 0.0
    for items in data.values():
        damp = 1.0 / len(items)
        wa, wb = items.get(a, 0.0), items.get(b, 0.0)
        dot += damp * wa * wb
        shared += damp * min(wa, wb)
        sq_a, sq_b = sq_a + damp * wa * wa, sq_b + damp * wb * wb
        tot_a, tot_b = tot_a + damp * wa, tot_b + damp * wb
    if kind == "cosine":
        return dot / math.sqrt(sq_a * sq_b)
    return shared / (tot_a + tot_b - shared)


def ranking_metrics(
    lists: dict[str, list[str]], relevant: dict[str, set[str]], k: int
) -> tuple[float, float]:
    """Mean recall@k and NDCG@k (binary relevance) over the users in `relevant`."""
    recalls, ndcgs = [], []
    for user, wanted in relevant.items():
        top = lists.get(user, [])[:k]
        hits = [i for i, item in enumerate(top) if item in wanted]
        recalls.append(len(hits) / len(wanted))
        dcg = sum(1.0 / math.log2(i + 2) for i in hits)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), k)))
        ndcgs.append(dcg / ideal)
    return sum(recalls) / len(recalls), sum(ndcgs) / len(ndcgs)
