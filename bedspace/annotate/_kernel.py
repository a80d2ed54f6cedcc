"""How two region sets compare: shared universe regions, their token cosine and the log odds of sharing them.

The annotator's kernel is the **token cosine**: the number of universe regions two sets share over the
geometric mean of their sizes (the cosine of their 0/1 token vectors). Beside it, the log odds ratio of the 2×2
table of regions (in one set or not × in the other or not) says whether two sets share more regions than chance:
a query whose best reference set shares no more than chance is unlike the collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from .._lazy import is_sparse
from ._tokens import TokenMatrix, TokenRows, binary_csr

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass(frozen=True)
class Comparison:
    """A block of queries against reference sets.

    Attributes
    ----------
    kernel
        Token cosine, queries × references: shared regions / sqrt(query size × reference size) (0 for an empty
        set).
    best_log_odds
        Per query, the largest log odds ratio (Haldane-corrected) of sharing regions with a compared set other
        than itself: about 0 for a set that shares no more regions with any reference set than chance would.
    """

    kernel: np.ndarray
    best_log_odds: np.ndarray

    def rows(self, positions: np.ndarray) -> Comparison:
        """The comparison of the queries at ``positions`` only."""
        return Comparison(self.kernel[positions], self.best_log_odds[positions])


def overlap_counts(query: TokenRows | sp.csr_matrix, reference: TokenRows | sp.csr_matrix) -> np.ndarray:
    """Shared regions of every query and reference set (0/1 rows: :class:`TokenRows` or from :func:`binary_csr`).

    ``query @ reference.T``, counted straight into the dense result: each reference set's regions are looked up
    in the query block transposed (region → queries), so only the block is transposed and the reference, the big
    matrix, is read in place (in memory, memory-mapped) and never copied. (scipy's sparse product makes a second
    pass to size a sparse result and builds it, which here is dense anyway: about 2-3 times the work.)
    """
    query, reference = _rows(query), _rows(reference)
    if query.n_regions != reference.n_regions:
        raise ValueError(f"queries have {query.n_regions} universe regions, the reference sets {reference.n_regions}")
    region_indptr, region_queries = query.by_region()  # regions × queries: the block's sets on each region
    return _shared_counts(
        reference.indptr, reference.indices, reference.rows, region_indptr, region_queries, len(query)
    )


def _rows(matrix) -> TokenRows:
    """A 0/1 CSR matrix's rows as :class:`TokenRows`, read in place (a :class:`TokenRows` as it is)."""
    if is_sparse(matrix):
        return TokenRows(matrix.indptr, matrix.indices, np.arange(matrix.shape[0]), matrix.shape[1])
    return matrix


@numba.njit(parallel=True, cache=True, nogil=True)
def _shared_counts(reference_indptr, reference_indices, reference_rows, region_indptr, region_queries, n_queries):
    shared = np.zeros((n_queries, reference_rows.size))
    for column in numba.prange(reference_rows.size):
        j = reference_rows[column]
        counts = np.zeros(n_queries)
        for p in range(reference_indptr[j], reference_indptr[j + 1]):
            region = reference_indices[p]
            for t in range(region_indptr[region], region_indptr[region + 1]):
                counts[region_queries[t]] += 1.0
        shared[:, column] = counts
    return shared


def compare(query_tokens, reference: TokenRows | sp.csr_matrix, *, own: np.ndarray | None = None) -> Comparison:
    """Compare queries (any sets × regions matrix) with reference sets.

    ``own``: per query, the reference set it is (a position among the reference sets, left out of
    ``best_log_odds``), or -1.
    """
    query = TokenMatrix.of(query_tokens).read()
    if is_sparse(reference):
        reference = _rows(binary_csr(reference, name="reference"))
    shared = overlap_counts(query, reference)  # checks the universes are the same
    return comparison(shared, query.sizes, reference.sizes, query.n_regions, own)


def comparison(
    shared: np.ndarray, query_sizes: np.ndarray, reference_sizes: np.ndarray, n_regions: int, own: np.ndarray | None
) -> Comparison:
    """The :class:`Comparison` of queries and reference sets from their shared regions and sizes."""
    log_odds = _log_odds(shared, query_sizes, reference_sizes, n_regions)
    exclude_own(log_odds, own)
    best = log_odds.max(axis=1) if log_odds.shape[1] else np.zeros(log_odds.shape[0])
    return Comparison(token_cosine(shared, query_sizes, reference_sizes), best)


def exclude_own(scores: np.ndarray, own: np.ndarray | None) -> np.ndarray:
    """Score ``-inf`` each query's own reference set (``own`` ≥ 0: its column), in place; returned."""
    if own is not None:
        own = np.asarray(own)
        rows = np.flatnonzero(own >= 0)
        scores[rows, own[rows]] = -np.inf
    return scores


def token_cosine(shared: np.ndarray, query_sizes: np.ndarray, reference_sizes: np.ndarray) -> np.ndarray:
    """Cosine of 0/1 token vectors from their shared counts and sizes (0 where a set is empty)."""
    norms = np.sqrt(np.outer(query_sizes, reference_sizes))
    return np.divide(shared, norms, out=np.zeros(shared.shape), where=norms > 0)


def jaccard_from_counts(shared: np.ndarray, query_sizes: np.ndarray, reference_sizes: np.ndarray) -> np.ndarray:
    """Jaccard similarity of token sets from their shared counts and sizes (0 where both are empty)."""
    union = query_sizes[:, None] + reference_sizes[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def _log_odds(shared, query_sizes, reference_sizes, n_regions) -> np.ndarray:
    """Log odds ratio of the 2×2 table of regions, with 0.5 added to every cell (finite for empty cells)."""
    a = shared + 0.5
    b = query_sizes[:, None] - shared + 0.5
    c = reference_sizes[None, :] - shared + 0.5
    d = n_regions - query_sizes[:, None] - reference_sizes[None, :] + shared + 0.5
    return np.log(a) + np.log(np.maximum(d, 0.5)) - np.log(b) - np.log(c)
