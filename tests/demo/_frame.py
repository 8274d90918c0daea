"""The demo shop's events as numpy columns, read back from its NDJSON, and the small statistics tests use."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from kawa.demo import Shop, iter_ndjson_batches

NAMES = ("view", "session_start", "cart_add", "cart_remove", "purchase", "search", "login", "signup")


class Keys(msgspec.Struct, forbid_unknown_fields=True):
    visitor_id: str
    session_id: str
    user_id: str | None = None


class Envelope(msgspec.Struct):
    """The typed part of an event as the collector reads it; decoding checks the types."""

    event_id: str
    event_name: str
    sync_date: str
    keys: Keys
    page: str
    item_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int | None = None
    revenue: float | None = None
    page_type: str | None = None
    coupon: str | None = None
    order_id: str | None = None


_decode = msgspec.json.Decoder(list[Envelope]).decode


def envelopes(shop: Shop) -> list[Envelope]:
    """Every event as sent on the wire, decoded into typed envelopes."""
    out: list[Envelope] = []
    for body in iter_ndjson_batches(shop, size=5000):
        out.extend(_decode(b"[" + body.rstrip(b"\n").replace(b"\n", b",") + b"]"))
    return out


@dataclass
class Frame:
    """One array per column, one row per event, in time order."""

    name: np.ndarray  # index into NAMES
    day: np.ndarray  # days since the window start, fractional
    user: np.ndarray  # user number - 1, or -1 when the event carries no user_id
    session: np.ndarray  # session number - 1
    item: np.ndarray  # item number - 1, or -1
    quantity: np.ndarray
    revenue: np.ndarray
    price: np.ndarray
    page_type: np.ndarray  # str

    def where(self, name: str) -> np.ndarray:
        return self.name == NAMES.index(name)


def frame(shop: Shop, events: list[Envelope]) -> Frame:
    code = {n: i for i, n in enumerate(NAMES)}
    start_ms = shop.start.timestamp() * 1000
    stamps = np.array([e.sync_date[:-1] for e in events], dtype="datetime64[ms]").astype(np.int64)
    return Frame(
        name=np.array([code[e.event_name] for e in events]),
        day=(stamps - start_ms) / 86_400_000,
        user=np.array([int(e.keys.user_id[2:]) - 1 if e.keys.user_id else -1 for e in events]),
        session=np.array([int(e.keys.session_id[2:]) - 1 for e in events]),
        item=np.array([int(e.item_id[2:]) - 1 if e.item_id else -1 for e in events]),
        quantity=np.array([e.quantity or 0 for e in events]),
        revenue=np.array([e.revenue or 0.0 for e in events]),
        price=np.array([e.price or 0.0 for e in events]),
        page_type=np.array([e.page_type or "" for e in events]),
    )


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve, ties counted half (Mann-Whitney U)."""
    order = np.argsort(score, kind="stable")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_predict(train: np.ndarray, y: np.ndarray, test: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Scores on `test` from an L2-regularised logistic regression fitted on standardised `train`."""
    # einsum rather than @: multi-threaded BLAS spins for seconds on a busy two-core machine.
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    x = np.column_stack([np.ones(len(train)), (train - mean) / std])
    w = np.zeros(x.shape[1])
    for _ in range(30):  # Newton's method converges in a handful of steps
        p = 1.0 / (1.0 + np.exp(-np.clip(np.einsum("ij,j->i", x, w), -30, 30)))
        hess = np.einsum("ij,i,ik->jk", x, p * (1 - p), x) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, np.einsum("ij,i->j", x, p - y) + l2 * w)
    return np.einsum("ij,j->i", np.column_stack([np.ones(len(test)), (test - mean) / std]), w)
