"""The sets' neighbour graph (``_neighbors``) is scanpy's: the same neighbours, distances and UMAP connectivities."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import bedspace as bs
from bedspace._neighbors import distance_matrix, nearest, umap_connectivities
from bedspace._similarity import unit_rows


def _scanpy_graph(vectors: np.ndarray, n_neighbors: int):
    adata = ad.AnnData(np.zeros((len(vectors), 1), np.float32))
    adata.obsm["v"] = vectors
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="v", metric="cosine", random_state=0)
    return adata.obsp["distances"], adata.obsp["connectivities"]


@pytest.mark.parametrize("n_neighbors", [None, 15, 2])
def test_graph_of_real_set_vectors_is_scanpys(slice_trained, n_neighbors):
    vectors = unit_rows(slice_trained[0].obsm["X_bedspace"])
    vectors[5] = 0  # a zero vector: cosine distance 1 to every set
    n = len(vectors)
    n_neighbors = n_neighbors or n  # None: every pair
    distances, connectivities = _scanpy_graph(vectors, n_neighbors)
    indices, dist = nearest(vectors, n_neighbors)
    assert (indices[:, 0] == np.arange(n)).all()  # each set its own first neighbour
    ours = distance_matrix(indices, dist)
    assert ours.dtype == distances.dtype == np.float32
    np.testing.assert_allclose(ours.toarray(), distances.toarray(), atol=1e-6)
    mine = umap_connectivities(indices, dist)
    assert mine.dtype == connectivities.dtype and mine.nnz == connectivities.nnz
    np.testing.assert_allclose(mine.toarray(), connectivities.toarray(), atol=1e-4)
    assert (mine != mine.T).nnz == 0  # a fuzzy union: symmetric


def test_identical_sets_are_at_distance_zero():
    vectors = unit_rows(np.random.default_rng(0).normal(size=(60, 12)))
    vectors[7] = vectors[3]  # two identical sets: their float32 cosine may round to just under 1
    indices, dist = nearest(vectors, 10)
    assert indices[3, :2].tolist() == [3, 7] and indices[7, :2].tolist() == [7, 3]
    assert dist[3, 1] == dist[7, 1] == 0
    graph = umap_connectivities(indices, dist)
    assert graph[3, 7] == graph[7, 3] == 1  # fully connected, as UMAP joins points at distance 0


def test_distances_writes_scanpys_layout_without_calling_it(slice_trained, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("scanpy.pp.neighbors was called")

    monkeypatch.setattr(sc.pp, "neighbors", refuse)
    adata = bs.tl.distances(slice_trained[0], n_neighbors=10, copy=True)
    entry = adata.uns["bedspace_neighbors"]
    assert entry["params"] | {} == {
        "n_neighbors": 10, "method": "umap", "random_state": 0, "metric": "cosine", "use_rep": "X_bedspace",
        "all_pairs": False,
    }  # fmt: skip
    assert adata.obsp[entry["connectivities_key"]].nnz > 0
    assert adata.obsp[entry["distances_key"]].getnnz(axis=1).max() == 9


def test_blocks_of_rows_give_the_whole_product(monkeypatch):
    import bedspace._neighbors as neighbors

    vectors = unit_rows(np.random.default_rng(4).normal(size=(300, 6)))
    whole = nearest(vectors, 12)
    monkeypatch.setattr(neighbors, "_BLOCK_CELLS", 3_000)  # blocks of 10 rows
    indices, distances = nearest(vectors, 12)
    np.testing.assert_array_equal(indices, whole[0])
    np.testing.assert_array_equal(distances, whole[1])
    exact = np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(indices, exact)  # each row's 12 nearest, itself first
