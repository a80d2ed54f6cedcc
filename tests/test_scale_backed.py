"""Training and embedding a collection opened backed (never read whole), and training on a stratified sample."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace.tl._train import _stratified_sample

LABELS = ["target", "cell_type"]
TRAIN = {"labels": LABELS, "dim": 8, "epochs": 3, "n_threads": 1, "random_state": 0}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """40 perturbed insulator sets: in memory, and out of core (backed, written in chunks of 7 sets)."""
    folder = tmp_path_factory.mktemp("scale")
    data = bs.datasets.insulators()
    sets = bs.datasets.perturb(data, n_sets=40, shift_rate=0.2, drop_rate=0.2, out_dir=folder / "sets")
    in_memory = bs.pp.tokenize(sets.beds, data.universe, metadata=sets.metadata)
    bs.pp.tokenize(sets.beds, data.universe, metadata=sets.metadata, out=folder / "c.h5ad", chunk_size=7)
    return in_memory, folder / "c.h5ad"


def backed(path) -> ad.AnnData:
    return ad.read_h5ad(path, backed="r")


@pytest.fixture(scope="module")
def trained(collection):
    in_memory, _ = collection
    adata = in_memory.copy()
    bs.tl.train(adata, **TRAIN)
    return adata


def test_training_a_backed_collection_is_training_it_in_memory(collection, trained):
    _, path = collection
    adata = backed(path)
    bs.tl.train(adata, **TRAIN)
    assert adata.isbacked
    # one thread: bit for bit the same run
    np.testing.assert_array_equal(adata.varm["bedspace"], trained.varm["bedspace"])
    np.testing.assert_array_equal(adata.obsm["X_bedspace"], trained.obsm["X_bedspace"])
    assert adata.obs["bedspace_in_training"].all()


@pytest.mark.parametrize("chunk_tokens", [1, 500, 2**24])
def test_embed_reads_a_backed_collection_in_chunks(collection, trained, chunk_tokens):
    _, path = collection
    model = bs.BEDSpaceModel.from_anndata(trained)
    vectors = model.embed(backed(path), chunk_tokens=chunk_tokens)
    np.testing.assert_array_equal(vectors, trained.obsm["X_bedspace"])


def test_embed_in_chunks_in_memory(collection, trained):
    in_memory, _ = collection
    model = bs.BEDSpaceModel.from_anndata(trained)
    np.testing.assert_array_equal(model.embed(in_memory, chunk_tokens=3000), trained.obsm["X_bedspace"])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_embed_checks_chunk_tokens(trained, bad):
    model = bs.BEDSpaceModel.from_anndata(trained)
    with pytest.raises(ValueError, match="chunk_tokens must be a positive integer"):
        model.embed(trained, chunk_tokens=bad)


def test_tl_embed_a_backed_collection(collection, trained):
    _, path = collection
    query = backed(path)
    bs.tl.embed(query, trained)
    np.testing.assert_array_equal(query.obsm["X_bedspace"], trained.obsm["X_bedspace"])


def test_sample_sets_draws_a_stratified_sample_and_embeds_every_set(collection):
    in_memory, path = collection
    adata = in_memory.copy()
    bs.tl.train(adata, **TRAIN, sample_sets=12)
    drawn = adata.obs["bedspace_in_training"]
    assert drawn.sum() == 12 and adata.uns["bedspace"]["params"]["sample_sets"] == 12
    # 8 combinations of 5 sets: one each, then the 4 others shared evenly (no combination gets 3)
    per_combination = drawn.groupby([adata.obs[c] for c in LABELS], observed=True).sum()
    assert len(per_combination) == 8 and per_combination.between(1, 2).all()
    assert np.all(np.linalg.norm(adata.obsm["X_bedspace"], axis=1) > 0.99)  # every set embedded
    # the same sample and run from the backed file, read a chunk at a time
    from_file = backed(path)
    bs.tl.train(from_file, **TRAIN, sample_sets=12)
    np.testing.assert_array_equal(from_file.obs["bedspace_in_training"], drawn)
    np.testing.assert_array_equal(from_file.varm["bedspace"], adata.varm["bedspace"])
    np.testing.assert_array_equal(from_file.obsm["X_bedspace"], adata.obsm["X_bedspace"])


def test_a_sample_as_large_as_the_collection_is_the_collection(collection, trained):
    in_memory, _ = collection
    adata = in_memory.copy()
    bs.tl.train(adata, **TRAIN, sample_sets=1000)
    np.testing.assert_array_equal(adata.varm["bedspace"], trained.varm["bedspace"])


def test_sample_sets_leaves_out_unlabelled_sets_with_a_warning(collection):
    in_memory, _ = collection
    adata = in_memory.copy()
    adata.obs["target"] = adata.obs["target"].astype(object)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(object)
    adata.obs.loc[adata.obs_names[:3], LABELS] = np.nan
    with pytest.warns(bs.BEDSpaceWarning, match="3 set.*not drawn for training"):
        bs.tl.train(adata, **TRAIN, sample_sets=20)
    assert not adata.obs["bedspace_in_training"].iloc[:3].any()
    assert adata.obs["bedspace_in_training"].sum() == 20


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_sample_sets_is_checked(trained, bad):
    with pytest.raises(ValueError, match="sample_sets must be a positive integer or None"):
        bs.tl.train(trained.copy(), **TRAIN, sample_sets=bad)


def test_a_sample_smaller_than_the_label_combinations_is_refused(trained):
    with pytest.raises(ValueError, match="sample_sets=5 is smaller than the 8 combinations"):
        bs.tl.train(trained.copy(), **TRAIN, sample_sets=5)


def test_stratified_sample_shares_in_proportion():
    frame = pd.DataFrame({"organ": ["blood"] * 90 + ["liver"] * 9 + ["brain"]})
    rows = _stratified_sample(frame, 21, random_state=1)
    assert rows.size == 21 and np.all(np.diff(rows) > 0)
    counts = frame.iloc[rows]["organ"].value_counts()
    # brain keeps its only set; the 18 others are shared 89 : 8 (16.5 : 1.5; the larger remainder is blood's)
    assert counts.to_dict() == {"blood": 18, "liver": 2, "brain": 1}
    assert np.array_equal(rows, _stratified_sample(frame, 21, random_state=1))  # seeded


def test_embedding_a_few_rows_on_one_thread_gives_the_same_vectors(collection, trained):
    import numba

    in_memory, _ = collection
    model = bs.BEDSpaceModel.from_anndata(trained)
    X = in_memory.X.tocsr()
    threads = numba.get_num_threads()
    few = model.embed_rows(X[:3].indptr, X[:3].indices)  # below the threshold: one thread
    assert numba.get_num_threads() == threads  # restored
    np.testing.assert_array_equal(few, model.embed_rows(X.indptr, X.indices)[:3])


def test_a_missing_label_column_is_named_before_reading(collection):
    _, path = collection
    with pytest.raises(KeyError, match="no column.*'tissue'"):
        bs.tl.train(backed(path), **{**TRAIN, "labels": ["tissue"]})


SEARCHES = {
    "r2l": {"search_type": "r2l", "top_k": 3},
    "l2r": {"query": "cell_type=Kc", "search_type": "l2r", "top_k": 40},
    "r2r": {"search_type": "r2r", "top_k": 40},
}


def _answers(source, query) -> dict[str, pd.DataFrame]:
    """The three default searches of ``source`` (an AnnData or a model) for one query file."""
    search = source.search if isinstance(source, bs.BEDSpaceModel) else lambda **o: bs.tl.search(source, **o)
    return {name: search(**({"query": query} | options)) for name, options in SEARCHES.items()}


def test_a_backed_collection_answers_as_in_memory(collection, trained, tmp_path):
    """r2l, l2r and r2r of a trained collection opened backed: the same methods, columns and answers."""
    in_memory, _ = collection
    query = str(bs.datasets.insulators().beds / "CTCF_Kc_Bushey_2009.bed.gz")
    expected = _answers(trained, query)
    assert "probability" in expected["r2l"] and "shared_labels" in expected["r2r"]  # the default annotator
    trained.write_h5ad(tmp_path / "trained.h5ad")
    opened = backed(tmp_path / "trained.h5ad")
    for name, table in _answers(opened, query).items():
        pd.testing.assert_frame_equal(table, expected[name], obj=name)
    # and a model of the backed collection, saved and loaded: its tokens are read from the file, then the folder
    model = bs.BEDSpaceModel.from_anndata(opened)
    assert model.reference.tokens.in_file
    loaded = bs.BEDSpaceModel.load(model.save(tmp_path / "model"))
    for name, table in _answers(loaded, query).items():
        if name == "r2r":  # the query's vector from the folder's float16 region vectors
            np.testing.assert_allclose(table["score"], expected[name]["score"], atol=2e-3)
        else:
            pd.testing.assert_frame_equal(table, expected[name], obj=name)


def test_a_model_trained_from_a_backed_collection_keeps_the_default_annotator(collection, trained, tmp_path):
    """The documented path for large collections: tokenize to a file, train it backed, save the model."""
    _, path = collection
    adata = backed(path)
    bs.tl.train(adata, **TRAIN)
    assert adata.uns["bedspace"]["annotator"]["calibrators"]  # calibrated, reading only the rows it needs
    query = str(bs.datasets.insulators().beds / "SuHw_Mbn2_Bushey_2009.bed.gz")
    loaded = bs.BEDSpaceModel.load(bs.BEDSpaceModel.from_anndata(adata).save(tmp_path / "model"))
    table = loaded.search(query, search_type="r2l")
    assert {"probability", "in_domain"} <= set(table.columns)
    pd.testing.assert_frame_equal(table, bs.tl.search(trained, query, search_type="r2l"))


def test_training_builds_one_model_and_queries_build_none(collection, monkeypatch):
    in_memory, _ = collection
    adata = in_memory.copy()
    built = []
    original = bs.BEDSpaceModel.__init__
    monkeypatch.setattr(bs.BEDSpaceModel, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    bs.tl.train(adata, **TRAIN)  # with calibration (the default)
    assert len(built) == 1
    query = str(bs.datasets.insulators().beds / "CTCF_Kc_Bushey_2009.bed.gz")
    _answers(adata, query)
    _answers(adata, query)
    assert len(built) == 1  # the model training made answers every search
