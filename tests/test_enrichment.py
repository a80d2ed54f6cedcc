from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import fisher_exact, hypergeom

from bedspace.annotate._baselines import (
    aggregate_by_label,
    enrichment_blocks,
    label_enrichment,
    log_fisher_greater,
    odds_ratio,
    rank_references,
)
from bedspace.annotate._kernel import overlap_counts
from bedspace.annotate._tokens import CodedTokens, TokenMatrix, TokenRows, binary_csr


def _random_tables(rng, n):
    """Consistent 2×2 tables (a, query size, reference size, universe size) of every shape, zeros included."""
    N = rng.integers(1, 80, n)
    q = rng.integers(0, N + 1)
    r = rng.integers(0, N + 1)
    low, high = np.maximum(0, q + r - N), np.minimum(q, r)
    a = low + (rng.random(n) * (high - low + 1)).astype(int)
    return a, q, r, N


def test_fisher_matches_scipy_on_small_random_tables():
    rng = np.random.default_rng(0)
    a, q, r, N = _random_tables(rng, 400)
    log_p = log_fisher_greater(a, q, r, N)  # one vectorised call for all tables
    odds = odds_ratio(a, q, r, N)
    for i in range(a.size):
        table = [[a[i], q[i] - a[i]], [r[i] - a[i], N[i] - q[i] - r[i] + a[i]]]
        expected = fisher_exact(table, alternative="greater")
        assert np.exp(log_p[i]) == pytest.approx(expected.pvalue, rel=1e-9), table
        if np.isnan(expected.statistic):
            assert np.isnan(odds[i]), table
        else:
            assert odds[i] == pytest.approx(expected.statistic), table
    assert np.all(log_p <= 0)


def test_fisher_in_the_deep_tail_stays_finite_and_matches_scipy_logsf():
    # 10⁵-region sets: p-values far below the smallest double, where a plain p-value is 0 and log(p) is -inf.
    N = 574_740
    a = np.array([60_000, 80_000, 11_000, 5_000, 44_400, 100])
    q = np.array([150_000, 150_000, 170_000, 170_000, 150_000, 150_000])
    r = np.array([170_000, 170_000, 11_000, 11_000, 170_000, 170_000])
    log_p = log_fisher_greater(a, q, r, N)
    assert hypergeom.sf(a[0] - 1, N, r[0], q[0]) == 0.0  # what the direct route gives
    assert np.all(np.isfinite(log_p))
    assert log_p[1] < log_p[0] < np.log(1e-300)  # more overlap, more significant
    expected = [hypergeom.logsf(ai - 1, N, ri, qi) for ai, qi, ri in zip(a, q, r, strict=True)]
    np.testing.assert_allclose(log_p, expected, rtol=1e-9, atol=1e-9)
    assert log_p[-1] == 0.0  # far below expectation: no evidence of enrichment


def test_fisher_around_the_mode_matches_scipy_on_large_tables():
    # Overlaps from 4 sd below to 8 sd above the expectation: both series (below and above the mode), long sums.
    rng = np.random.default_rng(6)
    for N in (5_000, 500_000):
        q = rng.integers(N // 100, N // 2, 60)
        r = rng.integers(N // 100, N // 2, 60)
        mean = q * r / N
        sd = np.sqrt(mean * (1 - r / N) * (N - q) / (N - 1))
        a = np.clip(np.round(mean + rng.uniform(-4, 8, 60) * sd), 0, np.minimum(q, r))
        expected = np.log(hypergeom.sf(a - 1, N, r, q))  # accurate here: p-values stay above 1e-20
        np.testing.assert_allclose(log_fisher_greater(a, q, r, N), expected, rtol=1e-8, atol=1e-12)


def test_fisher_rejects_inconsistent_tables():
    with pytest.raises(ValueError, match="inconsistent 2×2"):
        log_fisher_greater(5, 3, 10, 20)  # more shared regions than the query has
    with pytest.raises(ValueError, match="inconsistent 2×2"):
        log_fisher_greater(0, 15, 15, 20)  # 30 regions outside a 20-region universe


def _random_sets(rng, n_sets, n_regions, density):
    X = sp.random(n_sets, n_regions, density=density, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1
    return X


def test_blocks_are_the_scalar_test_and_do_not_depend_on_block_size():
    rng = np.random.default_rng(1)
    query, reference = _random_sets(rng, 7, 300, 0.1), _random_sets(rng, 5, 300, 0.2)
    dense_q, dense_r = query.toarray() > 0, reference.toarray() > 0
    shared = (dense_q[:, None, :] & dense_r[None, :, :]).sum(axis=2)
    blocks = list(enrichment_blocks(query, reference, block_size=3))
    assert [b.rows for b in blocks] == [slice(0, 3), slice(3, 6), slice(6, 7)]
    overlap = np.vstack([b.overlap for b in blocks])
    np.testing.assert_array_equal(overlap, shared)
    log_p = np.vstack([b.log_pvalue for b in blocks])
    expected = log_fisher_greater(shared, dense_q.sum(1)[:, None], dense_r.sum(1)[None, :], 300)
    np.testing.assert_allclose(log_p, expected)
    (whole,) = enrichment_blocks(query, reference, block_size=100)
    np.testing.assert_allclose(whole.log_pvalue, log_p)
    # a larger universe than the matrices' columns (regions no set has) makes the same overlap less surprising
    (wider,) = enrichment_blocks(query, reference, n_regions=3000, block_size=100)
    assert np.all(wider.log_pvalue[shared > 0] < log_p[shared > 0])
    # presence, not values: a value of 2, or a region entered twice, is still one region; the input is not touched
    doubled = query.copy()
    doubled.data[:] = 2
    repeated = sp.csr_matrix(
        (np.ones(2 * query.nnz, np.float32), np.repeat(query.indices, 2), 2 * query.indptr), shape=query.shape
    )
    for variant in (doubled, repeated):
        (same,) = enrichment_blocks(variant, reference, block_size=100)
        np.testing.assert_array_equal(same.overlap, shared)
    assert np.all(doubled.data == 2) and repeated.nnz == 2 * query.nnz


def test_references_rank_by_p_value_then_odds_ratio():
    log_p = np.array([[-5.0, -5.0, -1.0, -5.0], [0.0, -2.0, -3.0, 0.0]])
    odds = np.array([[2.0, 3.0, 10.0, np.nan], [np.nan, 1.0, 1.0, 5.0]])
    np.testing.assert_array_equal(rank_references(log_p, odds), [[2, 1, 4, 3], [4, 2, 1, 3]])


def test_label_enrichment_takes_each_labels_best_reference_set():
    rng = np.random.default_rng(2)
    query, reference = _random_sets(rng, 9, 400, 0.15), _random_sets(rng, 12, 400, 0.15)
    codes = np.array([0, 1, 1, 2, -1, 0, 2, 2, 1, -1, 0, 1])
    n_labels = 4  # label 3 has no reference set
    result = label_enrichment(query, reference, codes, n_labels, block_size=4)
    (block,) = enrichment_blocks(query, reference, block_size=100)
    ranks = rank_references(block.log_pvalue, block.odds_ratio)
    for label in range(3):
        members = np.flatnonzero(codes == label)
        best = members[np.argmin(ranks[:, members], axis=1)]
        np.testing.assert_array_equal(result.rank[:, label], ranks[np.arange(9), best])
        np.testing.assert_array_equal(result.log_pvalue[:, label], block.log_pvalue[np.arange(9), best])
    assert np.all(result.rank[:, 3] == 13) and np.all(result.log_pvalue[:, 3] == 0)
    # the scores order labels as the ranks do, within every query
    scores = result.scores()
    np.testing.assert_array_equal(np.argsort(-scores, axis=1, kind="stable"), np.argsort(result.rank, axis=1))
    again = aggregate_by_label(block.log_pvalue, block.odds_ratio, codes, n_labels)
    np.testing.assert_array_equal(again.rank, result.rank)


def test_scores_break_rank_ties_across_queries_by_p_value():
    # Both queries have a set of the label first; the more significant one must come first in l2r.
    log_p = np.array([[-50.0, -1.0], [-900.0, -2.0], [-3.0, -800.0]])
    odds = np.ones_like(log_p)
    result = aggregate_by_label(log_p, odds, np.array([0, 1]), 2)
    np.testing.assert_array_equal(result.rank, [[1, 2], [1, 2], [2, 1]])
    assert np.argsort(-result.scores()[:, 0]).tolist() == [1, 0, 2]


def test_empty_queries_prefer_no_label():
    rng = np.random.default_rng(3)
    reference = _random_sets(rng, 6, 200, 0.2)
    query = _random_sets(rng, 3, 200, 0.2).tolil()
    query[1, :] = 0  # a set that overlaps no universe region
    query = query.tocsr()
    (block,) = enrichment_blocks(query, reference)
    assert np.all(block.overlap[1] == 0) and np.all(block.log_pvalue[1] == 0) and np.all(np.isnan(block.odds_ratio[1]))
    codes = np.array([0, 0, 1, 1, 2, 2])
    result = label_enrichment(query, reference, codes, 3)
    assert np.all(result.rank[1] == 7) and np.all(np.isnan(result.odds_ratio[1]))
    assert np.ptp(result.scores()[1]) == 0  # every label tied
    alone = label_enrichment(query[[0, 2]], reference, codes, 3)
    np.testing.assert_array_equal(alone.rank, result.rank[[0, 2]])  # the empty set changes nothing for the others
    nothing = label_enrichment(query[:0], reference, codes, 3)
    assert nothing.rank.shape == (0, 3) and nothing.scores().shape == (0, 3)


def test_memory_is_one_query_block_not_queries_times_references():
    # 10,000 reference sets: all queries at once would hold queries × 10,000 numbers several times over.
    rng = np.random.default_rng(4)
    reference = _random_sets(rng, 10_000, 5_000, 0.01)
    query = _random_sets(rng, 120, 5_000, 0.05)
    codes = rng.integers(0, 50, 10_000)
    peaks, results = {}, {}
    for block_size in (8, 120):
        tracemalloc.start()
        results[block_size] = label_enrichment(query, reference, codes, 50, block_size=block_size)
        peaks[block_size] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    np.testing.assert_array_equal(results[8].rank, results[120].rank)
    np.testing.assert_allclose(results[8].log_pvalue, results[120].log_pvalue)
    # Memory follows the block: a float64 block × references array costs 8 × 10,000 × 8 bytes, and the tests of
    # one block (scipy's hypergeometric functions copy their arguments) hold some 10–20 of them at once.
    one_array = 8 * 10_000 * 8
    assert peaks[8] < 24 * one_array
    assert peaks[8] * 5 < peaks[120]  # 15 times the block, well over 5 times the memory


def test_enrichment_rejects_bad_input():
    rng = np.random.default_rng(5)
    query, reference = _random_sets(rng, 3, 100, 0.1), _random_sets(rng, 4, 100, 0.1)
    with pytest.raises(ValueError, match="different universes"):
        next(enrichment_blocks(query, _random_sets(rng, 4, 90, 0.1)))
    with pytest.raises(ValueError, match="block_size"):
        next(enrichment_blocks(query, reference, block_size=0))
    with pytest.raises(ValueError, match="n_regions"):
        next(enrichment_blocks(query, reference, n_regions=50))
    with pytest.raises(ValueError, match="one code per reference set"):
        label_enrichment(query, reference, np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="n_labels is 2"):
        label_enrichment(query, reference, np.array([0, 1, 2, 0]), 2)
    with pytest.raises(TypeError, match="integer label codes"):
        label_enrichment(query, reference, np.array([0.0, 1.0, 1.0, 0.0]), 2)


def test_binary_csr_passes_a_0_1_matrix_through_and_converts_anything_else():
    tokens = binary_csr(sp.random(5, 40, density=0.3, random_state=0, format="csr"), name="t")
    assert tokens.dtype == np.float32 and (tokens.data == 1).all()
    assert binary_csr(tokens, name="t") is tokens  # no copy of a collection that is already 0/1
    for value in (2.0, np.nan):
        counts = tokens.copy()
        counts.data[-1] = value
        converted = binary_csr(counts, name="t")
        assert converted is not counts and (converted.data == 1).all() and converted.nnz == tokens.nnz
        assert counts.data[-1] != 1  # the caller's matrix is left as it was


def test_token_rows_are_read_in_place_and_only_those_asked_for():
    tokens = binary_csr(sp.random(6, 40, density=0.3, random_state=0, format="csr"), name="t")
    rows = np.array([4, 1])
    read = TokenMatrix.of(tokens).read(rows)
    assert read.indices is tokens.indices and read.rows.tolist() == [4, 1]  # no copy, no remapping
    other = tokens.copy()
    other.data[other.indptr[0]] = 0.0  # a stored zero in a row not asked for is not looked at
    assert TokenMatrix.of(other).read(rows).indices is other.indices
    for damage in ("zero", "unsorted"):
        bad = tokens.copy()
        start = bad.indptr[4]
        if damage == "zero":
            bad.data[start] = 0.0  # a stored zero is not a region of the set
        else:
            bad.indices[start : start + 2] = bad.indices[start : start + 2][::-1].copy()
        converted = TokenMatrix.of(bad).read(rows)
        assert converted.indices is not bad.indices and converted.rows.tolist() == [0, 1]
        expected = tokens[rows].toarray()
        if damage == "zero":
            expected[0, tokens.indices[start]] = 0
        np.testing.assert_array_equal(converted.to_csr().toarray(), expected)
    coo = TokenMatrix.of(tokens.tocoo()).read(rows)
    np.testing.assert_array_equal(coo.to_csr().toarray(), tokens[rows].toarray())
    assert coo.fingerprint().tolist() == [[tokens[r].nnz, int(tokens[r].indices.sum())] for r in rows]


def test_tokens_stored_as_gaps_decode_to_the_same_rows():
    """A model folder keeps each set's regions as 16-bit gaps; wider gaps (and far first regions) are kept whole."""
    rng = np.random.default_rng(3)
    n_regions = 3_000_000
    rows = [np.sort(rng.choice(n_regions, size, replace=False)) for size in (0, 1, 5, 2000, 40)]
    rows.append(np.array([0, 1, 65534, 65535 + 65534, 2_999_999]))  # gaps at and around the escape
    indptr = np.cumsum([0] + [r.size for r in rows])
    indices = np.concatenate(rows).astype(np.int32)
    coded = CodedTokens.encode(indptr, indices)
    assert coded.gaps.dtype == np.uint16 and coded.gaps.size == indices.size and coded.escaped.size > 0
    tokens = TokenMatrix.from_coded(indptr, coded, n_regions)
    matrix = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr), shape=(len(rows), n_regions))
    for picked in (np.arange(len(rows)), np.array([5, 0, 3])):
        read = tokens.read(picked)
        np.testing.assert_array_equal(read.to_csr().toarray(), matrix[picked].toarray())
        np.testing.assert_array_equal(read.fingerprint(), TokenMatrix.of(matrix).read(picked).fingerprint())


def test_overlap_counts_are_the_sparse_product():
    dense = sp.random(7, 300, density=0.2, random_state=1).toarray()
    dense[3] = 0  # an empty set shares nothing
    query = binary_csr(dense, name="q")
    reference = binary_csr(sp.random(11, 300, density=0.3, random_state=2, format="csr"), name="r")
    expected = (query @ reference.T).toarray()
    np.testing.assert_array_equal(overlap_counts(query, reference), expected)
    wide = sp.csr_matrix((reference.data, reference.indices.astype(np.int64), reference.indptr.astype(np.int64)))
    np.testing.assert_array_equal(overlap_counts(query, wide), expected)  # 64-bit indices (large collections)
    assert overlap_counts(query[:0], reference).shape == (0, 11)
    assert overlap_counts(query, reference[:0]).shape == (7, 0)
    some = np.array([9, 2, 5])  # some reference sets, in any order, read in place
    read = TokenRows(reference.indptr, reference.indices, some, reference.shape[1])
    np.testing.assert_array_equal(overlap_counts(query, read), expected[:, some])
    with pytest.raises(ValueError, match="universe regions"):
        overlap_counts(query, reference[:, :200])


def test_every_real_set_finds_itself_first(hg19_adata):
    """LOLA's sanity check on the hg19 collection: queried against the whole collection, a set's top hit is itself."""
    X = hg19_adata.X
    first_hits = []
    for block in enrichment_blocks(X, X, block_size=64):
        assert np.all(np.isfinite(block.log_pvalue))
        ranks = rank_references(block.log_pvalue, block.odds_ratio)
        rows = np.arange(block.rows.start, block.rows.stop)
        first_hits += list(ranks[np.arange(rows.size), rows])
    assert first_hits == [1] * hg19_adata.n_obs
    assert block.log_pvalue.min() < np.log(1e-300)  # real p-values underflow a double: log space is needed
