"""Implicit-feedback matrix factorisation, to compare with item-to-item CF: a truncated SVD of the
user x item matrix of interaction weights (scikit-learn's TruncatedSVD), each user's row of the
low-rank reconstruction ranked. Blocks of users at a time in numpy; no Python loop over users.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BLOCK = 4096  # users scored at once: a block x items float32 matrix


def svd_lists(
    db: duckdb.DuckDBPyConnection, *, factors: int, n: int, exclude_bought: bool, seed: int = 0
) -> pa.Table:
    """user_id, item_id, rank of each user's top `n` from the `user_items` table of a fit's session."""
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD

    if factors < 1:
        raise ValueError(f"factors={factors} must be at least 1 (the rank of the factorisation, e.g. 64)")
    rows = db.sql("SELECT user_id, item_id, weight, bought FROM user_items").to_arrow_table()
    users = pc.dictionary_encode(rows.column("user_id")).combine_chunks()
    items = pc.dictionary_encode(rows.column("item_id")).combine_chunks()
    u, i = users.indices.to_numpy(), items.indices.to_numpy()
    shape = (len(users.dictionary), len(items.dictionary))
    matrix = csr_matrix((rows.column("weight").to_numpy().astype(np.float32), (u, i)), shape=shape)
    k = min(factors, min(shape) - 1)
    if k < 1:
        raise ValueError(f"a factorisation needs at least 2 users and 2 items; the data has {shape}")
    svd = TruncatedSVD(n_components=k, random_state=seed)
    embedded = svd.fit_transform(matrix).astype(np.float32)
    components = svd.components_.astype(np.float32)
    bought = rows.column("bought").to_numpy(zero_copy_only=False)
    banned = csr_matrix((np.ones(int(bought.sum()), np.float32), (u[bought], i[bought])), shape=shape)
    top = min(n, shape[1])
    picks, values = [], []
    for lo in range(0, shape[0], _BLOCK):
        scores = embedded[lo : lo + _BLOCK] @ components
        if exclude_bought:
            scores[banned[lo : lo + _BLOCK].toarray() > 0] = -np.inf
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        best_scores = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        picks.append(np.take_along_axis(best, order, axis=1))
        values.append(np.take_along_axis(best_scores, order, axis=1))
    table = pa.table(
        {
            "user_id": users.dictionary.take(pa.array(np.repeat(np.arange(shape[0]), top))),
            "item_id": items.dictionary.take(pa.array(np.concatenate(picks).ravel())),
            "score": pa.array(np.concatenate(values).ravel().astype(np.float64)),
            "rank": pa.array(np.tile(np.arange(1, top + 1), shape[0]), pa.int64()),
        }
    )
    # A user who bought nearly every item has fewer than `n` left: drop the bought ones' places.
    return table.filter(pc.is_finite(table.column("score")))
