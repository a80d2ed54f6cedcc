from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import bedspace as bs
from bedspace._labels import LabelTable
from bedspace._similarity import top_k


def test_r2l_annotates_an_unseen_blood_dnase_file(hg19, hg19_trained):
    train, test = hg19_trained
    blood = test.obs_names[(test.obs["assay"] == "DNase-seq") & (test.obs["organ"] == "blood")]
    assert len(blood) >= 3
    for name in blood[:3]:
        path = hg19.beds / name
        assert name not in train.obs_names
        hits = bs.tl.search(train, path, search_type="r2l", field="organ", top_k=3)
        assert list(hits.columns) == ["field", "rank", "name", "value", "probability", "score", "in_domain", "evidence"]
        assert hits["name"].iloc[0] == "organ=blood", hits
        assert hits["rank"].tolist() == [1, 2, 3] and hits["in_domain"].all()
        assert hits["probability"].is_monotonic_decreasing and hits["probability"].between(0, 1).all()
        # the label vectors, StarSpace's way: raw cosine similarities
        by_vectors = bs.tl.search(train, path, search_type="r2l", field="organ", top_k=3, method="embedding")
        assert list(by_vectors.columns) == ["rank", "name", "score", "field", "value"]
        assert by_vectors["score"].is_monotonic_decreasing and by_vectors["score"].between(-1, 1).all()


def test_r2l_all_fields_and_frame_query(hg19, hg19_trained):
    train, test = hg19_trained
    frame = bs.io.read_bed(hg19.beds / test.obs_names[0])
    hits = bs.tl.search(train, frame, search_type="r2l", top_k=100)
    assert set(hits["field"]) == {"organ", "cell_class", "assay"}
    assert len(hits) == len(train.uns["bedspace"]["labels"])


def test_l2r_for_assay_returns_that_assay_first(hg19_trained):
    train, _ = hg19_trained
    for assay, count in train.obs["assay"].value_counts().items():
        k = min(5, count)
        hits = bs.tl.search(train, f"assay={assay}", search_type="l2r", top_k=k, obs_columns=["n_regions"])
        assert (hits["assay"] == assay).all(), hits[["name", "assay", "score"]]
        assert list(hits.columns[-4:]) == ["organ", "cell_class", "assay", "n_regions"]  # the labels, then asked for


def test_r2r_excludes_a_stored_set_asked_for_by_name(hg19, hg19_trained):
    train, _ = hg19_trained
    name = train.obs_names[5]
    hits = bs.tl.search(train, name, search_type="r2r", top_k=train.n_obs)
    assert name not in hits["name"].tolist()
    assert len(hits) == train.n_obs - 1
    assert hits["rank"].tolist() == list(range(1, train.n_obs))
    # a BED file is compared with every set: the stored set with its name is a hit (its best), not hidden
    hits = bs.tl.search(train, hg19.beds / name, search_type="r2r", top_k=train.n_obs)
    assert len(hits) == train.n_obs and hits["name"].iloc[0] == name
    assert hits["cosine"].iloc[0] == pytest.approx(1.0, abs=1e-5)


def test_r2r_adds_the_probability_of_shared_labels_to_the_cosine(hg19, hg19_trained):
    train, test = hg19_trained
    query = hg19.beds / test.obs_names[0]
    hits = bs.tl.search(train, query, search_type="r2r", top_k=train.n_obs)
    assert list(hits.columns[:5]) == ["rank", "name", "score", "cosine", "shared_labels"]
    np.testing.assert_allclose(hits["score"], hits["cosine"] + 0.5 * hits["shared_labels"])
    assert hits["score"].is_monotonic_decreasing and hits["shared_labels"].between(0, 1).all()
    # shared_labels, from r2l's probabilities: the mean over fields of the query's probability of the set's label
    r2l = bs.tl.search(train, query, search_type="r2l", top_k=100)
    probability = {(f, v): p for f, v, p in r2l[["field", "value", "probability"]].itertuples(index=False)}
    fields = ["organ", "cell_class", "assay"]
    for _, hit in hits.iloc[[0, 40, -1]].iterrows():
        expected = np.mean([probability[f, train.obs.loc[hit["name"], f]] for f in fields])
        assert hit["shared_labels"] == pytest.approx(expected, abs=1e-6)
    # the model's arrays: what the search ranked by, for the query's tokens
    from bedspace._search import set_scores

    model = bs.BEDSpaceModel.from_anndata(train)
    tokens = sp.csr_matrix(test.X[:1] > 0, dtype=np.float32)
    arrays = set_scores(model, tokens, None, "regions", coverage=None, own=None)[0]
    np.testing.assert_allclose(arrays[0, train.obs_names.get_indexer(hits["name"])], hits["score"], atol=1e-6)
    cosine_only = set_scores(model, tokens, None, "embedding", coverage=None, own=None)[0]
    np.testing.assert_allclose(cosine_only[0, train.obs_names.get_indexer(hits["name"])], hits["cosine"], atol=1e-6)
    # the embedding alone, StarSpace's way, on request: the same cosines
    by_vectors = bs.tl.search(train, query, search_type="r2r", top_k=train.n_obs, method="embedding")
    assert list(by_vectors.columns[:3]) == ["rank", "name", "score"] and "cosine" not in by_vectors
    assert by_vectors["score"].is_monotonic_decreasing
    cosine = dict(zip(hits["name"], hits["cosine"], strict=True))
    np.testing.assert_allclose(by_vectors["score"], by_vectors["name"].map(cosine), atol=1e-6)


def test_r2r_weighs_unlabelled_sets_by_the_base_rates():
    from bedspace.annotate import Annotation, RegionAnnotator

    probabilities = {"organ": np.array([[0.7, 0.2, 0.1]]), "assay": np.array([[1.0, 0.0]])}
    annotator = RegionAnnotator()  # the fitted state shared_labels reads, set by hand
    annotator.fields_ = ["organ", "assay"]
    annotator.codes_ = {"organ": np.array([0, 2, -1]), "assay": np.array([0, -1, 1])}
    annotator.priors_ = {"organ": np.array([0.5, 0.25, 0.25]), "assay": np.array([0.5, 0.5])}
    answer = Annotation({}, probabilities, np.ones(1, bool), np.zeros(1), np.zeros(1))
    shared = annotator.shared_labels(answer)
    unknown_organ = 0.7 * 0.5 + 0.2 * 0.25 + 0.1 * 0.25
    np.testing.assert_allclose(shared, [[(0.7 + 1.0) / 2, (0.1 + 0.5) / 2, (unknown_organ + 0.0) / 2]])
    with pytest.raises(ValueError, match="no label probabilities"):
        annotator.shared_labels(Annotation({}, {}, np.ones(1, bool), np.zeros(1), np.zeros(1)))


def test_a_path_means_the_file_even_when_a_set_has_its_name(hg19, hg19_trained, tmp_path, monkeypatch):
    train, test = hg19_trained
    name = train.obs_names[0]
    other = hg19.beds / test.obs_names[test.obs["assay"] != train.obs["assay"].iloc[0]][0]
    (tmp_path / name).write_bytes(other.read_bytes())  # a file in the working folder named like a stored set
    monkeypatch.chdir(tmp_path)
    from_file = bs.tl.search(train, name, search_type="r2l", field="assay", top_k=1)
    monkeypatch.chdir(hg19.beds.parent)
    stored = bs.tl.search(train, name, search_type="r2l", field="assay", top_k=1)
    assert from_file["value"].iloc[0] == test.obs.loc[other.name, "assay"]
    assert stored["value"].iloc[0] == train.obs["assay"].iloc[0]


def test_a_query_with_nothing_to_rank_is_an_error(hg19_trained, tmp_path):
    train, _ = hg19_trained
    (tmp_path / "empty.bed").write_text("")
    (tmp_path / "fly.bed").write_text("chr2L\t100\t5000\n")
    for name in ("empty.bed", "fly.bed"):
        with pytest.raises(ValueError, match=f"nothing to rank: the query '{name}' overlap"):
            with pytest.warns(bs.BEDSpaceWarning):
                bs.tl.search(train, tmp_path / name, search_type="r2l")
    frame = pd.DataFrame({"Chromosome": ["chr1"], "Start": [1], "End": [2]})
    with pytest.warns(bs.BEDSpaceWarning) as record:
        hits = bs.tl.search(train, [tmp_path / "fly.bed", train.obs_names[0]], search_type="r2l", top_k=1)
    assert any("queries overlap no region the model knows" in str(w.message) for w in record)
    assert any("share no chromosome name" in str(w.message) for w in record)
    assert hits["query"].unique().tolist() == [train.obs_names[0]]
    with pytest.raises(ValueError, match="nothing to rank: the query 'query'"):
        bs.tl.search(train, frame, search_type="r2r")


def test_r2r_from_held_out_set_finds_same_assay(hg19, hg19_trained):
    train, test = hg19_trained
    tf = test.obs_names[test.obs["assay"] == "TF ChIP-seq"][0]
    hits = bs.tl.search(train, hg19.beds / tf, search_type="r2r", top_k=5)
    assert (hits["assay"] == "TF ChIP-seq").all()


def test_several_queries_get_a_query_column(hg19_trained):
    train, _ = hg19_trained
    names = train.obs_names[:3].tolist()
    hits = bs.tl.search(train, names, search_type="r2l", field="assay", top_k=2)
    assert hits.columns[0] == "query"
    assert hits["query"].tolist() == [n for n in names for _ in range(2)]
    labels = bs.tl.search(train, ["assay=DNase-seq", "organ=blood"], search_type="l2r", top_k=4)
    assert labels.groupby("query", sort=False).size().tolist() == [4, 4]


def test_anndata_query(hg19, hg19_trained):
    train, test = hg19_trained
    hits = bs.tl.search(train, test[:2], search_type="r2l", field="assay", top_k=1)
    assert hits["query"].tolist() == test.obs_names[:2].tolist()
    assert (hits["value"].to_numpy() == test.obs["assay"].iloc[:2].astype(str).to_numpy()).all()


def test_label_parsing():
    labels = LabelTable(
        ["organ", "organ", "cell_class", "cell_class", "assay"], ["blood", "skin", "T cell", "blood", "DNase-seq"]
    )
    assert labels.resolve("organ=skin") == 1
    assert labels.resolve("skin") == 1
    assert labels.resolve("T_cell") == 2  # the command line's spelling of "T cell"
    assert labels.resolve("dnase-seq") == 4
    assert labels.resolve("blood", field="cell_class") == 3
    with pytest.raises(ValueError, match=r"ambiguous.*'organ=blood', 'cell_class=blood'"):
        labels.resolve("blood")
    with pytest.raises(KeyError, match="unknown label 'skn'.*close matches: 'skin'"):
        labels.resolve("skn")
    with pytest.raises(KeyError, match="no label field 'tissue'"):
        labels.resolve("blood", field="tissue")


def test_search_errors(hg19_trained, tmp_path):
    train, _ = hg19_trained
    with pytest.raises(ValueError, match="search_type must be one of"):
        bs.tl.search(train, "x", search_type="r2x")
    with pytest.raises(FileNotFoundError, match="neither a BED file nor a region set of the collection"):
        bs.tl.search(train, str(tmp_path / "nope.bed"), search_type="r2l")
    with pytest.raises(KeyError, match="unknown label"):
        bs.tl.search(train, "organ=moon", search_type="l2r")
    with pytest.raises(ValueError, match="top_k"):
        bs.tl.search(train, "organ=blood", search_type="l2r", top_k=0)
    with pytest.raises(KeyError, match="run bs.tl.train"):
        bs.tl.search(train, "organ=blood", search_type="l2r", key="other")


def test_loaded_model_searches_like_the_anndata(hg19, hg19_trained, tmp_path):
    train, test = hg19_trained
    model = bs.BEDSpaceModel.load(bs.BEDSpaceModel.from_anndata(train).save(tmp_path / "model"))
    assert len(model.set_names) == train.n_obs
    query = hg19.beds / test.obs_names[0]
    for search_type, q in (("r2l", query), ("r2r", query), ("l2r", "organ=blood")):
        a = bs.tl.search(train, q, search_type=search_type, top_k=5)
        b = model.search(q, search_type=search_type, top_k=5)
        assert a["name"].tolist() == b["name"].tolist()
        np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5)


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.random((4, 1000)).astype(np.float32)
    index, best = top_k(scores, 7)
    expected = np.argsort(-scores, axis=1)[:, :7]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_array_equal(best, np.take_along_axis(scores, expected, axis=1))
    assert top_k(scores, 5000)[0].shape == (4, 1000)


def test_distances_layout_and_scanpy(hg19_trained, tmp_path):
    train, _ = hg19_trained
    adata = bs.tl.distances(train, copy=True)
    similarity = adata.obsm["bedspace_label_similarity"]
    assert isinstance(similarity, pd.DataFrame)
    assert similarity.columns.tolist() == train.uns["bedspace"]["labels"].index.tolist()
    labels = train.uns["bedspace"]["label_vectors"]
    expected = adata.obsm["X_bedspace"] @ (labels / np.linalg.norm(labels, axis=1, keepdims=True)).T
    np.testing.assert_allclose(similarity.to_numpy(), expected, atol=1e-5)  # raw cosine, not rescaled
    n = adata.n_obs
    assert adata.uns["bedspace_neighbors"]["params"]["all_pairs"]
    assert adata.obsp["bedspace_neighbors_distances"].shape == (n, n)
    assert adata.obsp["bedspace_neighbors_distances"].getnnz(axis=1).min() == n - 1  # every other set
    d = adata.obsp["bedspace_neighbors_distances"].toarray()
    cos = adata.obsm["X_bedspace"] @ adata.obsm["X_bedspace"].T
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(d[off], 1 - cos[off], atol=1e-4)

    adata.write_h5ad(tmp_path / "d.h5ad")
    back = ad.read_h5ad(tmp_path / "d.h5ad")
    pd.testing.assert_frame_equal(back.obsm["bedspace_label_similarity"], similarity)
    assert (back.obsp["bedspace_neighbors_connectivities"] != adata.obsp["bedspace_neighbors_connectivities"]).nnz == 0
    assert back.uns["bedspace_neighbors"]["distances_key"] == "bedspace_neighbors_distances"

    sc.tl.umap(back, neighbors_key="bedspace_neighbors", random_state=0)
    sc.tl.leiden(back, neighbors_key="bedspace_neighbors", flavor="igraph", n_iterations=2, random_state=0)
    assert back.obsm["X_umap"].shape == (n, 2)
    assert back.obs["leiden"].nunique() >= 2
    # clusters follow assay: most sets share the assay of their cluster's majority
    majority = back.obs.groupby("leiden", observed=True)["assay"].agg(lambda s: s.value_counts().iloc[0]).sum()
    assert majority / n > 0.8


def test_distances_knn_graph(hg19_trained):
    train, _ = hg19_trained
    adata = bs.tl.distances(train, n_neighbors=6, copy=True)
    assert adata.obsp["bedspace_neighbors_distances"].getnnz(axis=1).max() == 5
    assert not adata.uns["bedspace_neighbors"]["params"]["all_pairs"]
    with pytest.raises(ValueError, match="n_neighbors"):
        bs.tl.distances(train, n_neighbors=1, copy=True)


def test_distances_without_the_neighbour_graph(hg19_trained, tmp_path):
    """``neighbors=False`` writes the set × label similarities alone, as with the graph, and they survive h5ad."""
    train, _ = hg19_trained
    full = bs.tl.distances(train, copy=True)
    alone = bs.tl.distances(train, neighbors=False, copy=True)
    assert "bedspace_neighbors" not in alone.uns and "bedspace_neighbors_distances" not in alone.obsp
    pd.testing.assert_frame_equal(alone.obsm["bedspace_label_similarity"], full.obsm["bedspace_label_similarity"])
    alone.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    pd.testing.assert_frame_equal(back.obsm["bedspace_label_similarity"], full.obsm["bedspace_label_similarity"])


def test_large_collection_default_is_knn(monkeypatch, hg19_trained):
    from bedspace.tl import _distances

    monkeypatch.setattr(_distances, "ALL_PAIRS_MAX_SETS", 50)
    adata = bs.tl.distances(hg19_trained[0], copy=True)
    assert adata.uns["bedspace_neighbors"]["params"]["n_neighbors"] == _distances.DEFAULT_NEIGHBORS
