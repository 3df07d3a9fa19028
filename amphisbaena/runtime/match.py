"""Re-identification of single halves: the top-k partners of each query in a pool of the
other side, with scores, and no global assignment.

The queries' and the pool's arm features are computed once; the tiled head then
scores one block of queries against the whole pool at a time, so memory stays
O(block * pool).
"""

from __future__ import annotations

import numpy as np

from amphisbaena.engines.base import Backend
from amphisbaena.runtime.scoring import TILE_ROWS, both_arms, score_all

OTHER_SIDE = {"left": "right", "right": "left"}


def top_partners(
    backend: Backend, queries: np.ndarray, pool: np.ndarray, side: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For halves QUERIES of SIDE ("left" or "right") and halves POOL of the other side:
    (partners, scores), each (Q, min(k, len(pool))), best first."""
    if side == "left":
        query_features, pool_features = both_arms(backend, queries, pool)
    else:
        pool_features, query_features = both_arms(backend, pool, queries)
    k = min(k, len(pool))
    partners = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), TILE_ROWS):
        block = query_features[start : start + TILE_ROWS]
        if side == "left":
            block_scores = score_all(backend, block, pool_features)
        else:  # the head takes lefts first: score the pool against the block and turn it around
            block_scores = np.ascontiguousarray(score_all(backend, pool_features, block).T)
        best = np.argpartition(-block_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(block_scores, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        partners[start : start + len(block)] = np.take_along_axis(best, order, axis=1)
        scores[start : start + len(block)] = np.take_along_axis(best_scores, order, axis=1)
    return partners, scores
