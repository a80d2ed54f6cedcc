"""The default joint space: the annotator's label scores as vectors (``bs.tl.train``'s default, ``_space.py``)."""

from __future__ import annotations

import json
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._engine.native import SetSpace
from bedspace._space import REGION_SHARE
from bedspace.annotate._kernel import compare

LABELS = ["organ", "cell_class", "assay"]


@pytest.fixture(scope="module")
def default_trained(slice_adata):
    """The bundled slice split 75/25 by organ, the training part trained with the defaults."""
    train, test = bs.pp.split(slice_adata, stratify="organ", test_size=0.25, random_state=0)
    bs.tl.train(train, labels=LABELS)
    return train, test


def test_a_set_space_scales_each_block_to_its_share():
    space = SetSpace(np.array([0.5, 0.0, 0.0, 1.0]), np.array([0, 0, 1, 1]), np.array([0.75, 0.25]))
    sums = np.array([[4.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    vectors = space.finish(sums.copy(), np.array([4, 0]))
    # sum / sqrt(4) + bias: [2.5, 1, 0, 2.5]; the blocks to lengths sqrt(0.75) and sqrt(0.25)
    np.testing.assert_allclose(np.linalg.norm(vectors[0, :2]), math.sqrt(0.75), rtol=1e-6)
    np.testing.assert_allclose(vectors[0, 2:], [0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(vectors[0, :2] / vectors[0, 1], [2.5, 1.0], rtol=1e-6)
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0)
    assert not vectors[1].any()  # a set of no region stays zero, bias or not
    again = SetSpace.from_record(json.loads(json.dumps(space.record())))
    for name in ("bias", "blocks", "weights"):
        np.testing.assert_array_equal(getattr(again, name), getattr(space, name))
    for bias, blocks, weights, message in [
        ([0.0, 0.0], [0, 2], [0.5, 0.5], "without gaps"),
        ([0.0, 0.0], [0, 1], [0.5, 0.6], "summing to 1"),
        ([0.0], [0, 1], [0.5, 0.5], "one bias and one block per dimension"),
        ([np.nan, 0.0], [0, 1], [0.5, 0.5], "non-finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            SetSpace(np.array(bias), np.array(blocks), np.array(weights))


def test_the_default_space_writes_the_annotators_scores(default_trained):
    train, _ = default_trained
    params = train.uns["bedspace"]["params"]
    labels = pd.DataFrame(train.uns["bedspace"]["labels"])
    n_labels = len(labels)
    assert params["space"] == "annotator" and params["dim"] == train.varm["bedspace"].shape[1] > n_labels
    assert len(train.uns["bedspace"]["loss"]) == 0  # fitted in closed form: no epochs
    with pytest.raises(ValueError, match="fitted in closed form, without epochs"):
        bs.pl.loss(train, show=False)
    label_vectors = np.asarray(train.uns["bedspace"]["label_vectors"])
    np.testing.assert_array_equal(label_vectors[:, :n_labels], np.eye(n_labels))  # each label an axis
    assert not label_vectors[:, n_labels:].any()  # the regions block has no label
    np.testing.assert_allclose(np.linalg.norm(train.obsm["X_bedspace"], axis=1), 1.0, rtol=1e-5)
    space = bs.BEDSpaceModel.from_anndata(train).space
    np.testing.assert_allclose(space.weights[-1], REGION_SHARE)
    assert train.obs["bedspace_in_training"].all()  # every labelled set of the slice is fitted (fewer than 2,000)


def test_the_label_vectors_rank_labels_by_the_annotators_scores(default_trained):
    """A query's label scores in the space are the classifier's scores (before scaling up weak queries), exactly."""
    train, test = default_trained
    model = bs.BEDSpaceModel.from_anndata(train)
    annotator = model.annotator
    forms = annotator.score_weights()
    vectors = model.embed(test)
    tokens = test.X.tocsr()
    sizes = np.diff(tokens.indptr).astype(float)
    for field in LABELS:
        classifier = annotator.classifier_.fields[field]
        fitted = annotator.compared_sets().subset(np.searchsorted(annotator.classifier_.compared_rows, classifier.rows))
        expected = classifier.scores_of(compare(test.X, fitted).kernel)
        weights, constant = forms[field]
        linear = np.asarray(tokens.astype(np.float32) @ weights) / np.sqrt(sizes)[:, None] + constant
        np.testing.assert_allclose(linear, expected, rtol=1e-4, atol=1e-5)
        in_field = model.label_table.in_field(field)
        by_vectors = vectors @ model.unit_label_vectors[in_field].T
        np.testing.assert_array_equal(by_vectors.argmax(axis=1), expected.argmax(axis=1))
        table = bs.tl.search(train, test[:3], search_type="r2l", field=field, method="embedding", top_k=1)
        top = [model.label_table.names[in_field][i] for i in expected[:3].argmax(axis=1)]
        assert [f"{field}={v}" for v in table["value"]] == top


def test_starspace_options_choose_starspace_and_are_refused_for_the_annotators_space(slice_adata):
    adata = slice_adata[:60].copy()
    trained = bs.tl.train(adata, labels=LABELS, dim=8, epochs=2, n_threads=1, copy=True)
    assert trained.uns["bedspace"]["params"]["space"] == "starspace" and trained.varm["bedspace"].shape[1] == 8
    with pytest.raises(ValueError, match="epochs, dropout: StarSpace's options, and space='annotator'"):
        bs.tl.train(adata, labels=LABELS, space="annotator", epochs=2, dropout=0.1)
    with pytest.raises(ValueError, match="leave backend='starspace' out"):
        bs.tl.train(adata, labels=LABELS, space="annotator", backend="starspace")
    with pytest.raises(ValueError, match="space must be one of"):
        bs.tl.train(adata, labels=LABELS, space="joint")
    assert "bedspace" not in adata.varm  # refused before any work


def test_r2r_and_l2r_rank_by_the_vectors_by_default(default_trained):
    train, test = default_trained
    query = test[:2]
    by_default = bs.tl.search(train, query, search_type="r2r", top_k=20)
    pd.testing.assert_frame_equal(
        by_default, bs.tl.search(train, query, search_type="r2r", top_k=20, method="embedding")
    )
    assert "shared_labels" not in by_default.columns
    l2r = bs.tl.search(train, "organ=blood", search_type="l2r", top_k=30)
    pd.testing.assert_frame_equal(
        l2r, bs.tl.search(train, "organ=blood", search_type="l2r", top_k=30, method="embedding")
    )
    carriers = l2r[l2r["has_label"]]
    # the sets carrying a label are ordered (by what the other sets make of them), not tied
    assert carriers["score"].nunique() >= 0.9 * len(carriers)
    # r2l still annotates with calibrated probabilities
    assert "probability" in bs.tl.search(train, query, search_type="r2l").columns


def test_fitted_sets_add_their_held_out_scores_to_their_own(default_trained):
    train, _ = default_trained
    model = bs.BEDSpaceModel.from_anndata(train)
    own = model.embed(train)
    stored = train.obsm["X_bedspace"]
    regions = model.space.blocks == model.space.weights.size - 1
    np.testing.assert_allclose(stored[:, regions], own[:, regions], atol=1e-6)  # the regions block as embedded
    assert not np.allclose(stored[:, ~regions], own[:, ~regions], atol=1e-3)
    blood = train.obs["organ"].astype(str).to_numpy() == "blood"
    organ = model.label_table.in_field("organ")
    assert np.unique(np.round(stored[np.ix_(blood, organ)], 6), axis=0).shape[0] > 1


def test_the_space_survives_h5ad_and_model_folders(default_trained, tmp_path):
    train, test = default_trained
    path = tmp_path / "trained.h5ad"
    train.write_h5ad(path)
    again = bs.BEDSpaceModel.from_anndata(ad.read_h5ad(path))
    model = bs.BEDSpaceModel.from_anndata(train)
    for name in ("bias", "blocks", "weights"):
        np.testing.assert_array_equal(getattr(again.space, name), getattr(model.space, name))
    np.testing.assert_array_equal(again.embed(test), model.embed(test))
    folder = model.save(tmp_path / "model")
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["format_version"] == 4 and manifest["set_space"]["weights"][-1] == REGION_SHARE
    loaded = bs.BEDSpaceModel.load(folder)
    np.testing.assert_allclose(loaded.embed(test), model.embed(test), atol=2e-3)  # float16 region vectors
    np.testing.assert_array_equal(
        loaded.search(test[:3], search_type="r2l", method="embedding")["value"],
        model.search(test[:3], search_type="r2l", method="embedding")["value"],
    )


def test_the_default_space_is_not_handed_to_starspace(default_trained, tmp_path):
    with pytest.raises(ValueError, match="StarSpace would embed sets wrongly"):
        bs.BEDSpaceModel.from_anndata(default_trained[0]).to_starspace(tmp_path / "model.tsv")
    assert not (tmp_path / "model.tsv").exists()


def test_a_damaged_set_space_is_named(default_trained, tmp_path):
    from bedspace._folder import _manifest_digest

    folder = bs.BEDSpaceModel.from_anndata(default_trained[0]).save(tmp_path / "model")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["set_space"]["weights"] = [1.0]
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"model.json: set_space is damaged \(a set space needs one positive weight"):
        bs.BEDSpaceModel.load(folder)


def test_a_backed_collection_trains_the_same_space(slice_adata, tmp_path):
    """Out of core: the annotator reads the rows it needs from the file; the vectors are those of memory."""
    adata = slice_adata[:80].copy()
    path = tmp_path / "c.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    bs.tl.train(backed, labels=LABELS)
    bs.tl.train(adata, labels=LABELS)
    np.testing.assert_allclose(backed.obsm["X_bedspace"], adata.obsm["X_bedspace"], atol=1e-6)
    np.testing.assert_allclose(backed.varm["bedspace"], adata.varm["bedspace"], atol=1e-6)
