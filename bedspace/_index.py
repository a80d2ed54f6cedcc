"""An approximate nearest-neighbour index over unit vectors (an inverted file): candidates fast, scores exact.

Exact search is a matrix product with every stored vector (``_similarity``): 16 ms for one query over 10⁶ sets.
The index sorts the stored vectors into cells around k-means centroids once; a query is then compared with the
centroids and with the vectors of its nearest cells only. Only which candidates are found is approximate: every
candidate is scored with the exact cosine. Plain numpy, nothing compiled: the first index of a session costs no
more than the next.
"""

from __future__ import annotations

import numpy as np

from ._similarity import unit_rows

_CHUNK = 16_384  # rows assigned to cells at a time: a chunk × cells score block stays tens of MB
_MIN_CANDIDATES = 4_096  # fewer candidates than this cost less to score than to choose among


class ApproximateIndex:
    """Nearest neighbours by cosine among unit vectors: cells of spherical k-means, the nearest cells searched.

    Parameters
    ----------
    unit_vectors
        n × dim, rows of length 1 (zero rows allowed: cosine 0 with everything). The index holds its own
        copy, ordered by cell so that a cell is one block of rows.
    n_cells
        Number of cells (k-means centroids); ``None``: the square root of n, which balances comparing a query
        with the centroids against comparing it with the vectors of the cells it searches.
    n_probe
        Cells searched per query, nearest centroid first, and further ones until they hold at least 4,096
        vectors and ``k`` (so that an index of up to 4,096 vectors answers exactly); ``None``: 2% of the cells,
        at least 8. On clustered set vectors from 10⁴ to 10⁶ (``benchmarks/index.py``) that found the whole exact
        top 10; more cells, higher recall on harder data, slower queries.
    random_state
        Seed of the centroids' initial draw: the same seed and vectors, the same index.
    iterations
        Rounds of k-means on the sample the centroids are fitted to.
    """

    def __init__(
        self,
        unit_vectors: np.ndarray,
        *,
        n_cells: int | None = None,
        n_probe: int | None = None,
        random_state: int = 0,
        iterations: int = 10,
    ):
        vectors = np.ascontiguousarray(unit_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] < 2:
            raise ValueError(f"an index needs at least 2 vectors as rows of a 2-d array, got shape {vectors.shape}")
        n = vectors.shape[0]
        n_cells = max(1, round(np.sqrt(n))) if n_cells is None else min(int(n_cells), n)
        if n_cells < 1:
            raise ValueError(f"n_cells must be >= 1, got {n_cells}")
        self._n_probe = max(8, int(np.ceil(0.02 * n_cells))) if n_probe is None else int(n_probe)
        if self._n_probe < 1:
            raise ValueError(f"n_probe must be >= 1, got {n_probe}")
        self._centroids = _spherical_kmeans(vectors, n_cells, iterations, np.random.default_rng(random_state))
        cell = _nearest_cell(vectors, self._centroids)
        self._order = np.argsort(cell, kind="stable")  # vectors by cell, in their own order within a cell
        self._by_cell = vectors[self._order]
        self._starts = np.searchsorted(cell[self._order], np.arange(n_cells + 1))
        self._blocks = [slice(a, b) for a, b in zip(self._starts[:-1].tolist(), self._starts[1:].tolist(), strict=True)]

    def __len__(self) -> int:
        return self._by_cell.shape[0]

    @property
    def n_cells(self) -> int:
        return self._centroids.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the index holds: its copy of the vectors by cell, the centroids, the cell bounds."""
        return sum(a.nbytes for a in (self._by_cell, self._centroids, self._order, self._starts))

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query row, the ``k`` nearest stored rows it finds: ``(indices, scores)``, both queries × k.

        Rows ordered by exact cosine, descending (ties by position, as :func:`bedspace._similarity.top_k`).
        """
        queries = unit_rows(np.atleast_2d(queries))
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, len(self))
        sizes = np.diff(self._starts)
        cell_order = np.argsort(-(queries @ self._centroids.T), axis=1, kind="stable")
        found = np.empty((queries.shape[0], k), np.int64)
        scores = np.empty((queries.shape[0], k), np.float64)
        for row, (query, cells) in enumerate(zip(queries, cell_order, strict=True)):
            # the nearest n_probe cells, and further ones until they hold enough candidates
            enough = int(np.searchsorted(np.cumsum(sizes[cells]), max(k, _MIN_CANDIDATES))) + 1
            cells = cells[: max(self._n_probe, enough)]
            blocks = [self._blocks[c] for c in cells.tolist()]
            # a cell is one block of rows: its scores are one matrix-vector product (float32, as exact search)
            exact = np.concatenate([self._by_cell[block] @ query for block in blocks])
            stored = np.concatenate([self._order[block] for block in blocks])
            best = np.argpartition(-exact, k - 1)[:k] if exact.size > k else np.arange(exact.size)
            ranked = best[np.lexsort((stored[best], -exact[best]))]
            found[row], scores[row] = stored[ranked], exact[ranked]
        return found, scores


def _nearest_cell(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centroid by dot product, in chunks of rows."""
    cell = np.empty(vectors.shape[0], np.int64)
    for start in range(0, vectors.shape[0], _CHUNK):
        cell[start : start + _CHUNK] = np.argmax(vectors[start : start + _CHUNK] @ centroids.T, axis=1)
    return cell


def _spherical_kmeans(vectors: np.ndarray, n_cells: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """``n_cells`` unit centroids of k-means by cosine, fitted to a sample of 64 rows per cell at most."""
    n = vectors.shape[0]
    sample = vectors[np.sort(rng.choice(n, size=min(n, 64 * n_cells), replace=False))]
    centroids = sample[rng.choice(sample.shape[0], size=n_cells, replace=False)].copy()
    for _ in range(iterations):
        cell = _nearest_cell(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, cell, sample)
        # a cell left empty keeps its centroid (a sampled row), so no cell is lost
        occupied = np.bincount(cell, minlength=n_cells) > 0
        centroids[occupied] = unit_rows(sums[occupied])
    return centroids
