"""The approximate nearest-neighbour index: recall against exact search, exact scores, its use by ``search``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._index import ApproximateIndex
from bedspace._reference import ReferenceSets
from bedspace._similarity import scores_against, top_k, unit_rows


@pytest.fixture(scope="module")
def trained(hg19_trained):
    return hg19_trained[0]


@pytest.fixture(scope="module")
def around_real(trained):
    """8,000 stored and 200 query vectors around the collection's real set vectors (as benchmarks/index.py)."""
    real = unit_rows(trained.obsm["X_bedspace"])
    gaps = np.sqrt(np.maximum(2 - 2 * np.sort(real @ real.T, axis=1)[:, -2], 0))
    noise = 0.5 * float(np.median(gaps))  # a cloud around each real set, nearer to it than to any other set
    rng = np.random.default_rng(0)

    def draw(n):
        source = rng.integers(0, len(real), n)
        return unit_rows(real[source] + rng.normal(scale=noise / np.sqrt(real.shape[1]), size=(n, real.shape[1])))

    return draw(8_000), draw(200)


@pytest.fixture(scope="module")
def index(around_real):
    return ApproximateIndex(around_real[0], random_state=0)


def _recall(found, exact) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / exact.shape[1] for a, b in zip(found, exact, strict=True)]))


def test_recall_against_exact_search_on_clustered_vectors(around_real, index):
    stored, queries = around_real
    exact, _ = top_k(scores_against(queries, stored), 10)
    found, scores = index.query(queries, 10)
    assert found.shape == scores.shape == (200, 10)
    # clustered vectors are the case the index is for: it must find nearly all of the true top 10
    assert _recall(found, exact) >= 0.9
    # the scores are the exact cosines of the candidates, in descending order
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ stored.T, found, axis=1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_same_random_state_same_index(around_real, index):
    stored, queries = around_real
    (a, score_a), (b, score_b) = index.query(queries, 10), ApproximateIndex(stored, random_state=0).query(queries, 10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(score_a, score_b)
    assert index.nbytes > stored.nbytes  # its own copy of the vectors, and the graph


def test_k_of_every_row_is_exact():
    vectors = unit_rows(np.random.default_rng(1).normal(size=(40, 8)))
    found, scores = ApproximateIndex(vectors, random_state=0).query(vectors[:3], 40)
    exact, best = top_k(scores_against(vectors[:3], vectors), 40)
    np.testing.assert_array_equal(found, exact)
    np.testing.assert_allclose(scores, best, atol=1e-6)


def test_searching_every_cell_is_exact_search():
    rng = np.random.default_rng(2)
    vectors, queries = unit_rows(rng.normal(size=(6_000, 16))), unit_rows(rng.normal(size=(20, 16)))
    index = ApproximateIndex(vectors, n_probe=10**6, random_state=0)
    assert index.n_cells == 77  # the square root of the number of vectors
    found, scores = index.query(queries, 25)
    exact, best = top_k(scores_against(queries, vectors), 25)
    np.testing.assert_array_equal(found, exact)
    np.testing.assert_allclose(scores, best, atol=1e-6)


def test_nearest_cells_are_searched_until_they_hold_enough_candidates():
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng.normal(size=(20_000, 8)))
    vectors[5] = 0  # a zero row: cosine 0 with everything, never an error
    index = ApproximateIndex(vectors, n_cells=2_000, n_probe=1, random_state=0)  # cells of about 10 vectors
    found, scores = index.query(vectors[:50], 10)
    # one cell could not hold 10 rows, yet every query gets 10 distinct rows with their exact cosines
    assert (found >= 0).all() and all(len(set(row)) == 10 for row in found)
    np.testing.assert_allclose(scores, np.take_along_axis(vectors[:50] @ vectors.T, found, axis=1), atol=1e-5)
    # and a stored vector finds itself first (the zero row scores 0 with itself: any row may come first)
    assert (found[:, 0] == np.arange(50))[np.arange(50) != 5].all()
    with pytest.raises(ValueError, match="n_probe must be >= 1"):
        ApproximateIndex(vectors, n_probe=0)
    with pytest.raises(ValueError, match="at least 2 vectors"):
        ApproximateIndex(vectors[:1])


def _model_of(vectors: np.ndarray) -> bs.BEDSpaceModel:
    dim = vectors.shape[1]
    universe = pd.DataFrame({"chrom": pd.Categorical(["chr1"]), "start": [0], "end": [1]})
    labels = pd.DataFrame({"field": ["kind"], "value": ["any"]})
    sets = pd.DataFrame({"kind": "any"}, index=[f"set{i}" for i in range(len(vectors))])
    ones = np.ones((1, dim), np.float32)
    return bs.BEDSpaceModel(universe, ones, labels, ones, reference=ReferenceSets(sets, vectors))


def test_r2r_by_name_never_returns_the_set_itself(around_real):
    stored, _ = around_real
    model = _model_of(stored)
    names = model.set_names[:50].tolist()
    hits = model.search(names, search_type="r2r", top_k=10, approximate=True)
    exact = model.search(names, search_type="r2r", top_k=10)
    assert hits.groupby("query").size().eq(10).all()
    assert not (hits["query"] == hits["name"]).any()
    assert hits["rank"].tolist() == list(range(1, 11)) * 50
    # a stored vector's neighbours are found as well as a new query's
    pairs = {(q, n) for q, n in zip(exact["query"], exact["name"], strict=True)}
    assert np.mean([(q, n) in pairs for q, n in zip(hits["query"], hits["name"], strict=True)]) >= 0.9
    index = model.reference.approximate_index
    model.search(names[0], search_type="r2r", approximate=True)
    assert model.reference.approximate_index is index  # built once, kept with the reference sets


def test_search_on_the_collection_matches_exact(hg19, trained):
    # 129 sets: fewer than the candidates a query always gets, so the approximate answer is the exact one
    name = trained.obs_names[3]
    approx = bs.tl.search(trained, name, search_type="r2r", top_k=10, method="embedding", approximate=True)
    exact = bs.tl.search(trained, name, search_type="r2r", top_k=10, method="embedding")
    assert name not in approx["name"].tolist()
    assert approx["name"].tolist() == exact["name"].tolist()
    np.testing.assert_allclose(approx["score"], exact["score"], atol=1e-5)
    assert list(approx.columns) == list(exact.columns)
    query = hg19.beds / name  # a file is compared with every set: its own stored set is its best hit
    hits = bs.tl.search(trained, query, search_type="r2r", top_k=3, method="embedding", approximate=True)
    assert hits["name"].iloc[0] == name and hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    labels = ["organ=blood", "assay=DNase-seq"]
    approx = bs.tl.search(trained, labels, search_type="l2r", method="embedding", top_k=5, approximate=True)
    exact = bs.tl.search(trained, labels, search_type="l2r", method="embedding", top_k=5)
    pd.testing.assert_frame_equal(approx.drop(columns="score"), exact.drop(columns="score"))
    np.testing.assert_allclose(approx["score"], exact["score"], atol=1e-5)


def test_approximate_where_it_does_not_apply_is_an_error(trained):
    name = trained.obs_names[0]
    with pytest.raises(ValueError, match="r2l ranks labels exactly"):
        bs.tl.search(trained, name, search_type="r2l", approximate=True)
    with pytest.raises(ValueError, match="use method='embedding'"):
        bs.tl.search(trained, "organ=blood", search_type="l2r", approximate=True)  # regions by default
    with pytest.raises(ValueError, match="use method='embedding'"):
        bs.tl.search(trained, "organ=blood", search_type="l2r", method="regions", approximate=True)
    with pytest.raises(ValueError, match="use method='embedding'"):
        bs.tl.search(trained, name, search_type="r2r", approximate=True)  # cosine plus shared labels by default
    with pytest.raises(ValueError, match="approximate must be True or False"):
        bs.tl.search(trained, name, search_type="r2r", approximate="yes")
