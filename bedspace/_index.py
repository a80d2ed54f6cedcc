"""An approximate nearest-neighbour index over unit vectors (pynndescent): candidates fast, scores exact.

Exact search is a matrix product with every stored vector (``_similarity``): 16 ms for one query over 10⁶ sets.
The index answers from a k-nearest-neighbour graph instead, at a build cost paid once; only which candidates
are found is approximate, since every candidate is re-scored here with the exact cosine.
"""

from __future__ import annotations

import numpy as np

from ._lazy import is_sparse
from ._parallel import available_cores
from ._similarity import unit_rows


class ApproximateIndex:
    """Nearest neighbours by cosine among unit vectors, found with ``pynndescent.NNDescent``.

    Parameters
    ----------
    unit_vectors
        n × dim, rows of length 1 (zero rows allowed: cosine 0 with everything). Kept by reference for the
        exact re-scoring; the index holds its own reordered copy as well.
    n_neighbors
        Degree of the neighbour graph (pynndescent's default): higher finds more true neighbours, builds slower.
    epsilon
        Breadth of the graph search (pynndescent's ``query``). 0.3 rather than its default 0.1: on 10⁶ clustered
        set vectors (as ``benchmarks/index.py`` makes them), recall@10 was 0.90 at 0.2 and 0.97 at 0.3, for
        well under a millisecond a query either way (measured while choosing it).
    random_state
        Seed of the random projection trees and of the graph's initialisation: the same seed, the same index.
    n_jobs
        Threads of the build (``None``: every core this process may use).
    """

    def __init__(
        self,
        unit_vectors: np.ndarray,
        *,
        n_neighbors: int = 30,
        epsilon: float = 0.3,
        random_state: int = 0,
        n_jobs: int | None = None,
    ):
        from pynndescent import NNDescent  # imported here: it compiles its kernels on import, seconds

        vectors = np.ascontiguousarray(unit_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] < 2:
            raise ValueError(f"an index needs at least 2 vectors as rows of a 2-d array, got shape {vectors.shape}")
        self._vectors = vectors
        self._epsilon = float(epsilon)
        self._index = NNDescent(
            vectors,
            # unit vectors: cosine order is dot-product order ("cosine" runs the same kernel); queries were
            # several times faster than with "euclidean" in trials on 10⁵ clustered vectors
            metric="dot",
            n_neighbors=min(int(n_neighbors), vectors.shape[0] - 1),
            random_state=int(random_state),
            n_jobs=available_cores() if n_jobs is None else int(n_jobs),
            # stop refining the graph when under 1% of its edges change in an iteration, not 0.1%: on 10⁵
            # clustered vectors one iteration of four fewer, the same recall (measured while choosing it)
            delta=0.01,
            compressed=True,  # the build's neighbour heap and forest are dropped once the search graph exists
        )
        self._index.prepare()  # the search graph now, so that the first query is not the one that pays for it

    def __len__(self) -> int:
        return self._vectors.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the index holds: its copy of the vectors, the search graph and tree (not the input)."""
        seen: set[int] = set()

        def size(value) -> int:
            if id(value) in seen or value is self._vectors:
                return 0
            seen.add(id(value))
            if isinstance(value, np.ndarray):
                return value.nbytes
            if is_sparse(value):
                return sum(size(getattr(value, a)) for a in ("data", "indices", "indptr"))
            if isinstance(value, tuple | list):  # the search tree is a tuple of (named tuples of) arrays
                return sum(size(item) for item in value)
            return 0

        return sum(size(value) for value in vars(self._index).values())

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per query row, the ``k`` nearest stored rows it finds: ``(indices, scores)``, both queries × k.

        Rows ordered by exact cosine, descending (ties by position, as :func:`bedspace._similarity.top_k`).
        Where the graph search found fewer than ``k`` rows, the rest have index -1 and score ``-inf``.
        """
        queries = unit_rows(np.atleast_2d(queries))
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if k >= len(self):  # every stored row is a candidate: nothing to approximate
            found = np.broadcast_to(np.arange(len(self)), (queries.shape[0], len(self))).copy()
        else:
            found, _ = self._index.query(queries, k=k, epsilon=self._epsilon)
        found = found.astype(np.int64, copy=False)
        missing = found < 0
        # the exact cosine of each candidate, as the full matrix product would give it (float32 dot products)
        scores = np.einsum("qd,qkd->qk", queries, self._vectors[np.where(missing, 0, found)])
        scores = np.where(missing, -np.inf, scores.astype(np.float64))
        order = np.lexsort((np.where(missing, len(self), found), -scores), axis=1)
        found = np.take_along_axis(np.where(missing, -1, found), order, axis=1)
        return found, np.take_along_axis(scores, order, axis=1)
