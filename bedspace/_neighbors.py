"""The sets' k-nearest-neighbour graph by cosine, with UMAP's connectivities: scanpy's graph, without compiling.

scanpy's ``pp.neighbors`` computes the connectivities with ``umap``'s numba functions, which are compiled in every
new Python process (11–33 s on 2 cores, before a graph of any size). The same arithmetic fits in a few numpy
operations over all sets at once, so a notebook's or a command's first graph costs what the next one does. The
result is checked against ``scanpy.pp.neighbors`` in the tests.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ._similarity import top_k, unit_rows

_BLOCK_CELLS = 2**25  # cosines held at once (128 MB of float32): a block of sets against every set
_SAME = 1e-6  # cosine distances below this are rounding, not a difference
_SMOOTH_ITERATIONS = 64  # umap's binary search for each set's bandwidth
_SMOOTH_TOLERANCE = 1e-5
_MIN_BANDWIDTH_SCALE = 1e-3  # umap: a bandwidth is at least this share of the mean neighbour distance


def nearest(vectors: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n_neighbors`` nearest rows by cosine, itself first: ``(indices, cosine distances)``, exact.

    Every pair is compared, a block of rows at a time: 4.4 s for 20,000 sets, 32 s for 50,000 (2 cores, dim 77;
    ``benchmarks/neighbors.py``).
    """
    vectors = unit_rows(vectors)
    n = vectors.shape[0]
    indices = np.empty((n, n_neighbors), np.int64)
    distances = np.empty((n, n_neighbors), np.float32)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        scores = vectors[start:stop] @ vectors.T
        rows = np.arange(stop - start)
        scores[rows, rows + start] = np.inf  # a set is its own first neighbour, even beside an identical one
        found, best = top_k(scores, n_neighbors)
        indices[start:stop] = found
        # identical vectors have a cosine of 1 only up to float32 rounding: put them at distance 0, which UMAP treats
        # as the same point (scanpy can leave them at 1e-7, whose bandwidths then differ)
        distances[start:stop] = np.where(1 - best < _SAME, 0, 1 - best)
        distances[start:stop, 0] = 0
    return indices, distances


def distance_matrix(indices: np.ndarray, distances: np.ndarray) -> sparse.csr_matrix:
    """Sets × sets, each set's distances to its neighbours (itself left out), as ``scanpy.pp.neighbors`` stores."""
    n, k = indices.shape
    return sparse.csr_matrix(
        (distances[:, 1:].ravel().copy(), indices[:, 1:].ravel().copy(), np.arange(0, n * (k - 1) + 1, k - 1)),
        shape=(n, n),
    )


def umap_connectivities(indices: np.ndarray, distances: np.ndarray) -> sparse.csr_matrix:
    """UMAP's fuzzy union of each set's neighbourhood (``umap.fuzzy_simplicial_set``, as scanpy calls it).

    Each set gets a bandwidth σ such that its neighbours' memberships ``exp(-(d - ρ) / σ)`` sum to log₂ k, where ρ
    is its nearest non-zero distance; the directed memberships P are then joined as ``P + Pᵀ - P ∘ Pᵀ``.
    """
    n, k = indices.shape
    distances = distances.astype(np.float32)
    others = distances[:, 1:]  # column 0 is the set itself
    positive = np.where(others > 0, others, np.inf)
    rho = np.min(positive, axis=1)
    rho[~np.isfinite(rho)] = 0
    shifted = others - rho[:, None]
    target = np.float32(np.log2(k))
    low = np.zeros(n, np.float32)
    high = np.full(n, np.inf, np.float32)
    sigma = np.ones(n, np.float32)
    done = np.zeros(n, bool)
    for _ in range(_SMOOTH_ITERATIONS):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            total = np.where(shifted > 0, np.exp(-(shifted / sigma[:, None])), 1).sum(axis=1, dtype=np.float32)
        done |= np.abs(total - target) < _SMOOTH_TOLERANCE
        above = ~done & (total > target)
        below = ~done & ~above
        high[above] = sigma[above]
        sigma[above] = (low[above] + high[above]) / 2
        low[below] = sigma[below]
        sigma[below] = np.where(np.isinf(high[below]), sigma[below] * 2, (low[below] + high[below]) / 2)
        if done.all():
            break
    floor = np.where(rho > 0, distances.mean(axis=1), distances.mean()) * _MIN_BANDWIDTH_SCALE
    sigma = np.maximum(sigma, floor.astype(np.float32))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        member = np.exp(-((distances - rho[:, None]) / sigma[:, None]))
    member = np.where((distances - rho[:, None] <= 0) | (sigma[:, None] == 0), 1, member).astype(np.float32)
    member[indices == np.arange(n)[:, None]] = 0  # not a neighbour of itself
    directed = sparse.coo_matrix((member.ravel(), (np.repeat(np.arange(n), k), indices.ravel())), shape=(n, n))
    directed = directed.tocsr()
    directed.eliminate_zeros()
    joined = directed + directed.T - directed.multiply(directed.T)
    joined = sparse.csr_matrix(joined)
    joined.eliminate_zeros()
    return joined


def neighbor_graph(
    vectors: np.ndarray, n_neighbors: int, *, key: str, use_rep: str, random_state: int = 0
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, dict]:
    """``(distances, connectivities, uns entry)`` of the graph, the entry as ``scanpy.pp.neighbors(key_added=key)``.

    The entry names ``.obsp[key + "_distances"]`` and ``.obsp[key + "_connectivities"]`` (scanpy's own key,
    ``"neighbors"``: ``.obsp["distances"]`` and ``.obsp["connectivities"]``), and its ``params`` are scanpy's
    (``method="umap"``, ``metric="cosine"``), so ``sc.tl.umap(neighbors_key=key)`` and friends read it.
    """
    indices, distances = nearest(vectors, n_neighbors)
    prefix = "" if key == "neighbors" else f"{key}_"
    entry = {
        "connectivities_key": f"{prefix}connectivities",
        "distances_key": f"{prefix}distances",
        "params": {
            "n_neighbors": int(n_neighbors),
            "method": "umap",
            "random_state": int(random_state),
            "metric": "cosine",
            "use_rep": use_rep,
        },
    }
    return distance_matrix(indices, distances), umap_connectivities(indices, distances), entry
