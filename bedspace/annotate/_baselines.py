"""The baselines the annotator is measured against: overlap k-NN and LOLA-style enrichment.

**Overlap** (what interval-overlap search tools compute): the Jaccard similarity of two sets' universe regions;
a query's labels by a similarity-weighted vote of its ``k`` most similar labelled sets (:func:`knn_vote`).

**LOLA-style enrichment** (Sheffield & Bock 2016), the overlap statistics biologists already use to annotate a set.

For a query set and a reference (labelled) set, the universe regions form a 2×2 table: in the query or not ×
in the reference or not. One-sided Fisher's exact test asks whether the two share more regions than chance;
reference sets are ranked by p-value (ties by odds ratio), and a label gets the rank of its best reference set.

Everything works on CSR matrices (sets × universe regions, nonzero = the set has the region), with no AnnData:
the shared counts of a block of queries against all references are one sparse product, the p-values a
vectorised hypergeometric tail in log space (p-values of 10⁵-region sets are far below the smallest float).
Queries go in blocks, so that memory stays the sparse inputs plus one block × references of dense numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._kernel import jaccard_from_counts, overlap_counts
from ._tokens import binary_csr

# Relative accuracy of the summed tails.
_TAIL_TOLERANCE = 1e-14


@dataclass(frozen=True)
class EnrichmentBlock:
    """Fisher's exact test of a block of queries against every reference set.

    Attributes
    ----------
    rows
        Which queries (rows of the query matrix) the block holds.
    overlap
        Shared universe regions, block × references (the table's "in both" cell).
    log_pvalue
        Natural log of the one-sided (enrichment) p-value, block × references; 0 where there is no evidence.
    odds_ratio
        Sample odds ratio ``(a d) / (b c)`` of the 2×2 table, as :func:`scipy.stats.fisher_exact` reports it
        (``inf`` when ``b c = 0 < a d``, ``nan`` when both are 0).
    """

    rows: slice
    overlap: np.ndarray
    log_pvalue: np.ndarray
    odds_ratio: np.ndarray


def log_fisher_greater(overlap, query_size, reference_size, n_regions) -> np.ndarray:
    """Natural log of the one-sided Fisher's exact p-value for enrichment, vectorised.

    The p-value of the 2×2 table with ``a = overlap`` regions in both sets is ``P(X >= a)`` for ``X``
    hypergeometric: ``n_regions`` universe regions, ``reference_size`` of them in the reference, a query of
    ``query_size`` regions drawn — exactly ``scipy.stats.fisher_exact(table, alternative="greater")``.

    ``scipy.stats.hypergeom.logsf`` computes this with a Python loop and a sum over up to ``query_size`` terms
    per entry (about 10 ms an entry for 10⁵-region sets: hours for a 10,000-set reference), and its vectorised
    ``sf`` underflows to 0 for real region sets (p-values of 1e-100,000) and is slow for some universe sizes.
    Here every entry is a short series over the hypergeometric terms, summed for all entries at once with the
    ratios of neighbouring terms (``pmf(k + 1) / pmf(k)``, falling in ``k``: the distribution is log-concave):

    * above the mode, ``log p = log pmf(a) + log(1 + ρ_a + ρ_a ρ_{a+1} + …)``;
    * below it, ``p = 1 - P(X <= a - 1)`` with the lower tail summed downwards the same way (``p`` is then
      over ~0.4, so the subtraction loses nothing).

    Each sum stops once what is left, bounded by a geometric series, is below 1e-14 of the total. Far in the
    tail (real region sets) that takes a few terms; next to the mode a few standard deviations' worth.

    Parameters
    ----------
    overlap, query_size, reference_size, n_regions
        Counts, broadcast against each other.

    Returns
    -------
    ``log p`` (float64, ``<= 0``), broadcast shape of the inputs.
    """
    # imported here: scipy.stats takes 1–2 s to import, which opening a model (this module's importers) must not pay
    from scipy.stats import hypergeom

    a, n, K, N = (np.asarray(x, dtype=np.float64) for x in (overlap, query_size, reference_size, n_regions))
    a, n, K, N = np.broadcast_arrays(a, n, K, N)
    if np.any((a < 0) | (a > np.minimum(n, K)) | (np.maximum(n, K) > N) | (n + K - a > N)):
        raise ValueError("inconsistent 2×2 tables: need 0 <= overlap <= min(sizes) and sizes - overlap <= n_regions")
    log_p = np.zeros(a.shape)
    # At or below the smallest possible overlap, P(X >= a) = 1.
    informative = a > np.maximum(0.0, n + K - N)
    upper = informative & (_next_ratio(a, n, K, N) < 1)
    if upper.any():
        a_, n_, K_, N_ = a[upper], n[upper], K[upper], N[upper]
        log_p[upper] = hypergeom.logpmf(a_, N_, K_, n_) + np.log(_ratio_series(a_, n_, K_, N_, step=1))
    lower = informative & ~upper
    if lower.any():
        b_, n_, K_, N_ = a[lower] - 1, n[lower], K[lower], N[lower]
        below = np.exp(hypergeom.logpmf(b_, N_, K_, n_)) * _ratio_series(b_, n_, K_, N_, step=-1)
        log_p[lower] = np.log1p(-np.minimum(below, 1.0))
    return np.minimum(log_p, 0.0)


def _next_ratio(k, n, K, N):
    """``pmf(k + 1) / pmf(k)`` of the hypergeometric (0 at the top of the support)."""
    return np.maximum(K - k, 0) * np.maximum(n - k, 0) / ((k + 1) * (N - K - n + k + 1))


def _ratio_series(k0: np.ndarray, n: np.ndarray, K: np.ndarray, N: np.ndarray, *, step: int) -> np.ndarray:
    """``Σ pmf(k) / pmf(k0)`` over ``k = k0, k0 + step, …`` to the end of the support, all entries at once.

    For entries whose terms fall from ``k0`` on: ``step=1`` at or above the mode, ``step=-1`` below it.
    """
    total = np.ones_like(k0)
    term = np.ones_like(k0)
    k = k0.copy()
    end = np.minimum(n, K) if step > 0 else np.maximum(0.0, n + K - N)
    active = np.flatnonzero(k != end)
    while active.size:
        ka, na, Ka, Na = k[active], n[active], K[active], N[active]
        ratio = _next_ratio(ka, na, Ka, Na) if step > 0 else 1.0 / _next_ratio(ka - 1, na, Ka, Na)
        term[active] *= ratio
        total[active] += term[active]
        k[active] += step
        # The ratios keep falling, so what is left is at most term · ρ / (1 - ρ) for the ratio ρ just used.
        with np.errstate(divide="ignore"):
            remainder = np.where(ratio < 1, term[active] * ratio / (1 - ratio), np.inf)
        done = (remainder <= _TAIL_TOLERANCE * total[active]) | (k[active] == end[active]) | (term[active] == 0)
        active = active[~done]
    return total


def odds_ratio(overlap, query_size, reference_size, n_regions) -> np.ndarray:
    """Sample odds ratio ``(a d) / (b c)`` of the 2×2 tables, as :func:`scipy.stats.fisher_exact` reports it."""
    a = np.asarray(overlap, dtype=np.float64)
    b = query_size - a
    c = reference_size - a
    d = n_regions - query_size - reference_size + a
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a * d) / (b * c)


def enrichment_from_counts(shared, query_sizes, reference_sizes, n_regions) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's exact test (enrichment) of queries × references from their shared-region counts.

    Parameters
    ----------
    shared
        Shared universe regions, queries × references (:func:`overlap_counts`).
    query_sizes, reference_sizes
        Regions per query and per reference set.
    n_regions
        Universe size.

    Returns
    -------
    ``(log_pvalue, odds_ratio)``, both queries × references (see :class:`EnrichmentBlock`).
    """
    shared = np.asarray(shared, dtype=np.float64)
    q = np.asarray(query_sizes, dtype=np.float64)[:, None]
    r = np.asarray(reference_sizes, dtype=np.float64)[None, :]
    if shared.shape != (q.shape[0], r.shape[1]):
        raise ValueError(f"shared counts have shape {shared.shape}; expected {(q.shape[0], r.shape[1])}")
    return log_fisher_greater(shared, q, r, n_regions), odds_ratio(shared, q, r, n_regions)


def enrichment_blocks(
    query, reference, *, n_regions: int | None = None, block_size: int = 256
) -> Iterator[EnrichmentBlock]:
    """Fisher's exact test of every query against every reference set, one block of queries at a time.

    Parameters
    ----------
    query
        Sets × universe regions (CSR or dense; nonzero = the set has the region).
    reference
        Reference sets × the same universe regions.
    n_regions
        Universe size (the table's total); default the number of columns.
    block_size
        Queries per block: memory is the sparse inputs plus a few ``block_size × n_references`` arrays.

    Yields
    ------
    :class:`EnrichmentBlock` per block of queries, in order.
    """
    query = binary_csr(query, name="query")
    reference = binary_csr(reference, name="reference")
    if query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"query and reference are on different universes ({query.shape[1]} and {reference.shape[1]} regions)"
        )
    n_regions = query.shape[1] if n_regions is None else int(n_regions)
    if n_regions < query.shape[1]:
        raise ValueError(f"n_regions ({n_regions}) is smaller than the matrices' {query.shape[1]} columns")
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    block_size = int(block_size)
    query_sizes = np.diff(query.indptr).astype(np.float64)
    reference_sizes = np.diff(reference.indptr).astype(np.float64)
    for start in range(0, query.shape[0], block_size):
        rows = slice(start, min(start + block_size, query.shape[0]))
        shared = overlap_counts(query[rows], reference)
        log_p, odds = enrichment_from_counts(shared, query_sizes[rows], reference_sizes, n_regions)
        yield EnrichmentBlock(rows=rows, overlap=shared, log_pvalue=log_p, odds_ratio=odds)


def rank_references(log_pvalue: np.ndarray, odds: np.ndarray) -> np.ndarray:
    """1-based rank of every reference set per query: smallest p-value first, ties by larger odds ratio.

    Ties in both keep the reference order. A ``nan`` odds ratio (empty table margins) ranks as the lowest.
    """
    return _order_and_ranks(log_pvalue, odds)[1]


def _order_and_ranks(log_pvalue: np.ndarray, odds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """References best first per query (``order``), and each reference's 1-based rank."""
    odds = np.where(np.isnan(odds), -np.inf, odds)
    # lexsort sorts by the last key first: log p ascending (most significant first), then odds ratio descending.
    order = np.lexsort((-odds, log_pvalue), axis=-1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, order.shape[-1] + 1)[None, :], axis=-1)
    return order, ranks


@dataclass(frozen=True)
class LabelEnrichment:
    """Per query and label: the standing of the label's best reference set (see :func:`label_enrichment`).

    Attributes
    ----------
    rank
        Rank of the label's best reference set among all reference sets (1 = the query's top hit), queries ×
        labels. ``n_references + 1`` for a label with no reference set, and for every label of a query with no
        evidence at all (no regions: every table is empty, no label is preferred).
    log_pvalue
        Natural log of that set's enrichment p-value (0 where there is no set or no evidence).
    odds_ratio
        That set's odds ratio (``nan`` where there is no set or no evidence).
    """

    rank: np.ndarray
    log_pvalue: np.ndarray
    odds_ratio: np.ndarray

    def scores(self) -> np.ndarray:
        """Label scores, higher = more enriched: ``-rank``, ties broken by the p-value.

        Within a query the order is the LOLA order (a label's best rank; labels are never tied unless neither
        has a reference set). Across queries — ranking sets for a label, as l2r does — many queries put some
        set of the label first; among those, the smaller p-value comes first. The tie-break is
        ``-log p / (1 + max(-log p))``, in [0, 1), so it never overrides a rank.
        """
        evidence = -self.log_pvalue
        peak = evidence.max() if evidence.size else 0.0
        return -self.rank.astype(np.float64) + evidence / (1.0 + peak)


def _check_codes(reference_labels, n_references: int, n_labels: int) -> np.ndarray:
    codes = np.asarray(reference_labels)
    if codes.shape != (n_references,):
        raise ValueError(
            f"reference_labels has shape {codes.shape}; expected one code per reference set ({n_references},)"
        )
    if not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(f"reference_labels must be integer label codes, got dtype {codes.dtype}")
    if codes.size and codes.max() >= n_labels:
        raise ValueError(f"reference_labels has code {codes.max()}, but n_labels is {n_labels}")
    return codes


def aggregate_by_label(log_pvalue, odds, reference_labels, n_labels: int) -> LabelEnrichment:
    """Per query, each label's best reference set (see :func:`label_enrichment`), from computed tests.

    Parameters
    ----------
    log_pvalue, odds
        Queries × references, as :func:`enrichment_from_counts` returns them.
    reference_labels
        Label code (``0 … n_labels - 1``) of each reference set; negative = unlabelled (ranked, never counted).
    n_labels
        Number of labels.
    """
    log_pvalue = np.asarray(log_pvalue, dtype=np.float64)
    odds = np.asarray(odds, dtype=np.float64)
    if log_pvalue.ndim != 2 or odds.shape != log_pvalue.shape:
        raise ValueError(f"log_pvalue {log_pvalue.shape} and odds {odds.shape} must be the same 2-D shape")
    n_queries, n_references = log_pvalue.shape
    codes = _check_codes(reference_labels, n_references, n_labels)
    rank = np.full((n_queries, n_labels), n_references + 1, dtype=np.int64)
    log_p = np.zeros((n_queries, n_labels))
    best_odds = np.full((n_queries, n_labels), np.nan)
    # Labelled references grouped by label: a label's best rank is the minimum over its group's columns.
    by_label = np.flatnonzero(codes >= 0)
    by_label = by_label[np.argsort(codes[by_label], kind="stable")]
    labels, group_starts = np.unique(codes[by_label], return_index=True)
    # Every table of an empty query has empty margins (odds ratio 0/0): its ranking would be the reference order.
    evidence = np.flatnonzero(~np.all(np.isnan(odds), axis=1)) if n_references else np.zeros(0, np.int64)
    if not labels.size or not evidence.size:
        return LabelEnrichment(rank=rank, log_pvalue=log_p, odds_ratio=best_odds)
    order, ranks = _order_and_ranks(log_pvalue[evidence], odds[evidence])
    best = np.minimum.reduceat(ranks[:, by_label], group_starts, axis=1)
    best_reference = np.take_along_axis(order, best - 1, axis=1)  # order lists references by rank
    rows = evidence[:, None]
    rank[rows, labels] = best
    log_p[rows, labels] = np.take_along_axis(log_pvalue[evidence], best_reference, axis=1)
    best_odds[rows, labels] = np.take_along_axis(odds[evidence], best_reference, axis=1)
    return LabelEnrichment(rank=rank, log_pvalue=log_p, odds_ratio=best_odds)


def label_enrichment(
    query,
    reference,
    reference_labels: np.ndarray,
    n_labels: int,
    *,
    n_regions: int | None = None,
    block_size: int = 256,
) -> LabelEnrichment:
    """Rank labels for each query by the enrichment of their best reference set (LOLA, aggregated by label).

    LOLA itself ranks reference sets and leaves the reading to the user, who looks at the annotations of the
    top hits. A label's score here is what that reader sees first: the rank of the label's best reference set
    in the query's ranking (smallest p-value, ties by odds ratio). Averaging over a label's sets instead would
    punish labels whose sets are heterogeneous (``organ=blood`` holds DNase, ATAC and TF ChIP sets) and reward
    labels with a single good set; the best set is the 1-nearest-neighbour rule of enrichment, as the overlap
    baseline's k-NN vote is that of Jaccard similarity.

    Parameters
    ----------
    query, reference
        Sets × universe regions (see :func:`enrichment_blocks`).
    reference_labels
        Label code (``0 … n_labels - 1``) of each reference set; negative = unlabelled (ranked, never counted).
    n_labels
        Number of labels.
    n_regions, block_size
        See :func:`enrichment_blocks`. Memory: the sparse inputs, one block × references of tests, and the
        queries × labels result.

    Returns
    -------
    :class:`LabelEnrichment` with queries × labels arrays.
    """
    _check_codes(reference_labels, reference.shape[0], n_labels)
    n_queries = query.shape[0]
    rank = np.full((n_queries, n_labels), reference.shape[0] + 1, dtype=np.int64)
    log_p = np.zeros((n_queries, n_labels))
    odds = np.full((n_queries, n_labels), np.nan)
    for block in enrichment_blocks(query, reference, n_regions=n_regions, block_size=block_size):
        part = aggregate_by_label(block.log_pvalue, block.odds_ratio, reference_labels, n_labels)
        rank[block.rows], log_p[block.rows], odds[block.rows] = part.rank, part.log_pvalue, part.odds_ratio
    return LabelEnrichment(rank=rank, log_pvalue=log_p, odds_ratio=odds)


def jaccard(test: sp.csr_matrix, train: sp.csr_matrix) -> np.ndarray:
    """Jaccard similarity of token sets, test × train (what interval-overlap search tools compute)."""
    test, train = binary_csr(test, name="test"), binary_csr(train, name="train")
    return jaccard_from_counts(overlap_counts(test, train), np.diff(test.indptr), np.diff(train.indptr))


def knn_vote(similarity: np.ndarray, train_codes: np.ndarray, n_labels: int, k: int) -> np.ndarray:
    """Label scores by a similarity-weighted vote of the ``k`` most similar training sets."""
    k = min(k, similarity.shape[1])
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    votes = np.zeros((similarity.shape[0], n_labels))
    for i, row in enumerate(nearest):
        codes = train_codes[row]
        ok = codes >= 0
        np.add.at(votes[i], codes[ok], similarity[i, row[ok]] + 1e-9)
    return votes


@dataclass(frozen=True)
class OverlapBaselines:
    """Shared regions of test and training sets, computed once for the Jaccard and enrichment baselines.

    ``jaccard``, ``log_pvalue`` and ``odds_ratio`` are test × train; ``enrichment_ranks`` ranks the training sets
    per test set by LOLA's order (:func:`rank_references`).
    """

    jaccard: np.ndarray
    log_pvalue: np.ndarray
    odds_ratio: np.ndarray
    enrichment_ranks: np.ndarray

    @classmethod
    def of(cls, test_tokens, train_tokens) -> OverlapBaselines:
        """Compare test sets with training sets (two sets × regions matrices on the same universe)."""
        train_x, test_x = binary_csr(train_tokens, name="train"), binary_csr(test_tokens, name="test")
        if train_x.shape[1] != test_x.shape[1]:
            raise ValueError(
                f"train and test are on different universes ({train_x.shape[1]} and {test_x.shape[1]} regions)"
            )
        shared = overlap_counts(test_x, train_x)
        test_sizes, train_sizes = np.diff(test_x.indptr), np.diff(train_x.indptr)
        log_pvalue, odds = enrichment_from_counts(shared, test_sizes, train_sizes, train_x.shape[1])
        return cls(
            jaccard_from_counts(shared, test_sizes, train_sizes), log_pvalue, odds, rank_references(log_pvalue, odds)
        )
