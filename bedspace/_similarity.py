"""Cosine similarity and top-k ranking over normalised vectors (the core of every search)."""

from __future__ import annotations

import numpy as np


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest scores in descending order (ties by position): ``(indices, scores)``.

    ``argpartition`` first, so one query against 10⁶ candidates costs one pass, not a full sort.
    """
    scores = np.atleast_2d(scores)
    k = min(int(k), scores.shape[1])
    if k <= 0:
        empty = np.zeros((scores.shape[0], 0))
        return empty.astype(np.int64), empty
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    index = np.take_along_axis(part, order, axis=1)
    return index, np.take_along_axis(scores, index, axis=1)


# Below this many query rows, a product with the stored vectors runs on one BLAS thread: waking threads for a
# product this small costs more than it saves (benchmarks/scale.py: one r2r query over 20,000 sets, 44 → 21 ms).
FEW_QUERIES = 8


def scores_against(queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``queries @ stored.T``, on one BLAS thread for a handful of queries."""
    if queries.shape[0] >= FEW_QUERIES:
        return queries @ stored.T
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return queries @ stored.T
