from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bedspace as bs


@pytest.fixture(scope="module")
def trained():
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)
    bs.tl.train(adata, labels=["target", "cell_type"], dim=16, epochs=5)
    return data, adata


def test_from_anndata(trained):
    _, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    assert model.dim == 16
    assert model.labels.index.tolist() == adata.uns["bedspace"]["labels"].index.tolist()
    np.testing.assert_array_equal(model.label_vectors, adata.uns["bedspace"]["label_vectors"])
    assert model.universe.index.equals(adata.var_names) or len(model.universe) == adata.n_vars
    assert model.chrom_sizes["chr2L"] > 0
    assert "labels in ['cell_type', 'target']" in repr(model)


def test_save_load_embed_round_trip(trained, tmp_path):
    data, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    folder = model.save(tmp_path / "model")
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["format"] == "bedspace-model" and manifest["params"]["epochs"] == 5
    loaded = bs.BEDSpaceModel.load(folder)
    np.testing.assert_array_equal(loaded.region_vectors, model.region_vectors)
    np.testing.assert_array_equal(loaded.label_vectors, model.label_vectors)
    pd.testing.assert_frame_equal(loaded.labels, model.labels)
    np.testing.assert_array_equal(loaded.universe["start"], adata.var["start"])
    np.testing.assert_array_equal(loaded.loss, adata.uns["bedspace"]["loss"])
    # embedding BED files, a tokenized AnnData and a frame all agree with training
    np.testing.assert_allclose(loaded.embed(data.files[:3]), adata.obsm["X_bedspace"][:3], atol=1e-6)
    np.testing.assert_allclose(loaded.embed(adata), adata.obsm["X_bedspace"], atol=1e-6)
    frame = bs.io.read_bed(data.files[5])
    np.testing.assert_allclose(loaded.embed(frame)[0], adata.obsm["X_bedspace"][5], atol=1e-6)


def test_save_refuses_to_overwrite_and_is_atomic(trained, tmp_path, monkeypatch):
    model = bs.BEDSpaceModel.from_anndata(trained[1])
    folder = model.save(tmp_path / "model")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(folder)
    model.save(folder, overwrite=True)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "other")
    with pytest.raises(OSError, match="disk full"):
        model.save(folder, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    monkeypatch.undo()
    bs.BEDSpaceModel.load(folder)  # the earlier model is intact


def test_load_errors(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bedspace model folder"):
        bs.BEDSpaceModel.load(tmp_path)
    folder = bs.BEDSpaceModel.from_anndata(trained[1]).save(tmp_path / "model")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["format_version"] = 99
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format 99.*upgrade bedspace"):
        bs.BEDSpaceModel.load(folder)
    manifest["format_version"] = 1
    (folder / "model.json").write_text(json.dumps(manifest))
    (folder / "label_vectors.npy").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete.*label_vectors.npy"):
        bs.BEDSpaceModel.load(folder)


def test_from_anndata_needs_training():
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe)
    with pytest.raises(KeyError, match="run bs.tl.train"):
        bs.BEDSpaceModel.from_anndata(adata)


def test_starspace_tsv_interop(trained, tmp_path):
    data, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    tsv = model.to_starspace(tmp_path / "model.tsv")
    first = tsv.read_text().split("\n")[0].split("\t")
    assert first[0].count("_") == 2 and len(first) == 17
    again = bs.BEDSpaceModel.from_starspace(tsv, universe=data.universe)
    np.testing.assert_allclose(again.region_vectors, model.region_vectors, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(again.label_vectors, model.label_vectors, rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(again.labels, model.labels)


def test_from_starspace_plain_labels_and_errors(trained, tmp_path):
    data, adata = trained
    region = f"{adata.var['chrom'].iloc[0]}_{adata.var['start'].iloc[0]}_{adata.var['end'].iloc[0]}"
    tsv = tmp_path / "m.tsv"
    tsv.write_text(f"{region}\t0.1\t0.2\n__label__T_cell\t0.3\t0.4\n")
    model = bs.BEDSpaceModel.from_starspace(tsv, universe=data.universe)
    assert model.labels.to_dict("records") == [{"field": "label", "value": "T_cell"}]
    assert model.region_vectors[0].tolist() == pytest.approx([0.1, 0.2])
    tsv.write_text("chrZ_1_2\t0.1\t0.2\n")
    with pytest.raises(ValueError, match="not regions of this universe"):
        bs.BEDSpaceModel.from_starspace(tsv, universe=data.universe)
    tsv.write_text(f"{region}\t0.1\tabc\n")
    with pytest.raises(ValueError, match="line 1: vector values"):
        bs.BEDSpaceModel.from_starspace(tsv, universe=data.universe)


def test_embed_unknown_set_warns(trained):
    model = bs.BEDSpaceModel.from_anndata(trained[1])
    frame = pd.DataFrame({"Chromosome": ["chr2L"], "Start": [1], "End": [2]})
    with pytest.warns(bs.BEDSpaceWarning, match="zero vector.*query"):
        vector = model.embed(frame)
    assert not vector.any()


def test_to_anndata_round_trip_and_scanpy_tools(trained, tmp_path):
    _, adata = trained
    model = bs.BEDSpaceModel.load(bs.BEDSpaceModel.from_anndata(adata).save(tmp_path / "m"))
    again = model.to_anndata()
    assert again.obs_names.equals(adata.obs_names) and again.n_vars == adata.n_vars
    np.testing.assert_array_equal(again.obsm["X_bedspace"], adata.obsm["X_bedspace"])
    back = bs.BEDSpaceModel.from_anndata(again)
    np.testing.assert_array_equal(back.region_vectors, model.region_vectors)
    np.testing.assert_array_equal(back.label_vectors, model.label_vectors)
    bs.tl.distances(again)
    assert again.obsm["bedspace_label_similarity"].shape == (8, 6)
    again.write_h5ad(tmp_path / "again.h5ad")
    bare = bs.BEDSpaceModel(model.universe, model.region_vectors, model.labels, model.label_vectors)
    with pytest.raises(ValueError, match="carries no region sets"):
        bare.to_anndata()
