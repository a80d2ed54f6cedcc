from __future__ import annotations

import io
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs


@pytest.fixture(scope="module")
def trained():
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)
    adata.obs["replicate"] = np.arange(adata.n_obs, dtype=np.int16)  # a numeric column, kept as such
    adata.obs["control"] = adata.obs["cell_type"] == "Kc"  # a boolean column
    bs.tl.train(adata, labels=["target", "cell_type"], dim=16, epochs=5, n_threads=1)
    return data, adata


def assert_same_model(a: bs.BEDSpaceModel, b: bs.BEDSpaceModel) -> None:
    assert a.universe.same_as(b.universe) and a.universe.name == b.universe.name
    assert a.universe.chrom_sizes == b.universe.chrom_sizes
    assert a.universe.names.equals(b.universe.names)
    assert a.label_table == b.label_table
    # as a model folder keeps them: float16 (queries are embedded by their float32 sums)
    np.testing.assert_array_equal(np.asarray(a.region_vectors, np.float16), np.asarray(b.region_vectors, np.float16))
    np.testing.assert_array_equal(a.label_vectors, b.label_vectors)
    assert a.params == b.params
    np.testing.assert_array_equal(a.loss, b.loss)
    assert (a.reference is None) == (b.reference is None)
    if a.reference is not None:
        pd.testing.assert_frame_equal(a.set_metadata, b.set_metadata)
        np.testing.assert_array_equal(a.set_vectors, b.set_vectors)


def test_from_anndata(trained):
    _, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    assert model.dim == 16
    assert model.labels.index.tolist() == adata.uns["bedspace"]["labels"].index.tolist()
    np.testing.assert_array_equal(model.label_vectors, adata.uns["bedspace"]["label_vectors"])
    assert model.universe.names.equals(adata.var_names)
    assert model.chrom_sizes["chr2L"] > 0
    assert "labels in ['cell_type', 'target']" in repr(model)


@pytest.mark.parametrize("key", ["bedspace", "run2"])
def test_anndata_and_model_are_exact_inverses(trained, key, tmp_path):
    """from_anndata(to_anndata(m)) == m and to_anndata(from_anndata(a)) holds what a held, for any key."""
    _, adata = trained
    adata = adata.copy()
    if key != "bedspace":
        bs.tl.train(adata, labels=["target"], dim=8, epochs=2, key_added=key, n_threads=1)
    model = bs.BEDSpaceModel.from_anndata(adata, key=key)
    assert model.universe.name == "dm3_insulators_tiles_5kb.bed" and model.chrom_sizes is not None
    again = model.to_anndata(key=key)
    assert_same_model(bs.BEDSpaceModel.from_anndata(again, key=key), model)
    pd.testing.assert_frame_equal(again.obs, adata.obs)
    assert again.obs["cell_type"].dtype == "category" and again.obs["replicate"].dtype == np.int16
    pd.testing.assert_frame_equal(again.var[["chrom", "start", "end"]], adata.var[["chrom", "start", "end"]])
    np.testing.assert_array_equal(again.obsm[f"X_{key}"], adata.obsm[f"X_{key}"])
    np.testing.assert_array_equal(again.varm[key], adata.varm[key])
    for name in ("params", "loss", "label_vectors", "universe"):
        assert str(again.uns[key][name]) == str(adata.uns[key][name]), name
    for name in ("tokenize", "version", "universe"):  # what bs.pp.tokenize recorded comes back too
        assert str(again.uns["bedspace"][name]) == str(adata.uns["bedspace"][name]), name
    pd.testing.assert_frame_equal(again.uns[key]["labels"], adata.uns[key]["labels"])
    # and through .h5ad
    again.write_h5ad(tmp_path / "again.h5ad")
    assert_same_model(bs.BEDSpaceModel.from_anndata(ad.read_h5ad(tmp_path / "again.h5ad"), key=key), model)


def test_save_load_keeps_every_part(trained, tmp_path):
    data, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    folder = model.save(tmp_path / "model")
    manifest = json.loads((folder / "model.json").read_text())
    assert manifest["format"] == "bedspace-model" and manifest["format_version"] == 4
    assert manifest["params"]["epochs"] == 5 and manifest["provenance"]["version"] == bs.__version__
    assert set(manifest["files"]) == {
        "universe", "region_vectors", "labels", "label_vectors", "sets", "set_vectors", "tokens_indptr",
        "tokens_gaps", "tokens_escaped", "tokens_escaped_ptr", "annotator",
    }  # fmt: skip
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    loaded = bs.BEDSpaceModel.load(folder)
    assert_same_model(loaded, model)
    assert loaded.set_metadata["cell_type"].dtype == "category"  # categoricals stay categoricals
    assert loaded.set_metadata["control"].dtype == bool
    assert loaded.region_vectors.dtype == np.float16 and loaded.set_vectors.dtype == np.float32
    # embedding BED files, a tokenized AnnData and a frame all agree with training (to float16's precision)
    np.testing.assert_allclose(loaded.embed(data.files[:3]), adata.obsm["X_bedspace"][:3], atol=2e-3)
    np.testing.assert_allclose(loaded.embed(adata), adata.obsm["X_bedspace"], atol=2e-3)
    frame = bs.io.read_bed(data.files[5])
    np.testing.assert_allclose(loaded.embed(frame)[0], adata.obsm["X_bedspace"][5], atol=2e-3)
    np.testing.assert_array_equal(loaded.embed(frame), loaded.embed(data.files[5:6]))


def test_save_refuses_to_overwrite_and_is_atomic(trained, tmp_path, monkeypatch):
    model = bs.BEDSpaceModel.from_anndata(trained[1])
    folder = model.save(tmp_path / "model")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(folder)
    model.save(folder, overwrite=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("years of work")
    with pytest.raises((ValueError, FileExistsError, PermissionError), match="notes"):
        model.save(tmp_path / "notes", overwrite=True)  # never deletes a folder that is not a model
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "years of work"

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "other")
    with pytest.raises(OSError, match="disk full"):
        model.save(folder, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["model", "notes"]
    monkeypatch.undo()
    bs.BEDSpaceModel.load(folder)  # the earlier model is intact


@pytest.fixture
def saved(trained, tmp_path):
    return bs.BEDSpaceModel.from_anndata(trained[1]).save(tmp_path / "model")


def _edit_manifest(folder, **changes):
    manifest = json.loads((folder / "model.json").read_text())
    manifest.update(changes)
    (folder / "model.json").write_text(json.dumps(manifest))


def test_load_errors(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a bedspace model folder"):
        bs.BEDSpaceModel.load(tmp_path)
    _edit_manifest(saved, format_version=99)
    with pytest.raises(ValueError, match="format 99.*reads formats 1 to 4: upgrade bedspace"):
        bs.BEDSpaceModel.load(saved)
    _edit_manifest(saved, format_version="1")
    with pytest.raises(ValueError, match="format_version must be a whole number >= 1, got '1'"):
        bs.BEDSpaceModel.load(saved)
    _edit_manifest(saved, format_version=2)
    (saved / "label_vectors.npy").unlink()
    with pytest.raises(FileNotFoundError, match="incomplete, missing label_vectors.npy"):
        bs.BEDSpaceModel.load(saved)
    (saved / "model.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="model.json: expected a JSON object, got a list"):
        bs.BEDSpaceModel.load(saved)


@pytest.mark.parametrize(
    ("file", "tamper"),
    [
        ("universe.npz", "truncate"),
        ("labels.tsv", "swap"),
        ("label_vectors.npy", "nan"),
        ("region_vectors.npy", "truncate"),
        ("sets.h5ad", "truncate"),
        ("tokens_gaps.npy", "truncate"),
        ("annotator.npz", "truncate"),
    ],
)
def test_a_tampered_file_is_refused_by_name(saved, file, tamper):
    path = saved / file
    if tamper == "shift":
        import gzip

        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        shifted = ["\t".join([c, str(int(s) + 2500), str(int(e) + 2500)]) for c, s, e in (x.split("\t") for x in lines)]
        path.write_bytes(gzip.compress(("\n".join(shifted) + "\n").encode()))
    elif tamper == "swap":
        lines = path.read_text().splitlines()
        lines[1], lines[2] = lines[2], lines[1]
        path.write_text("\n".join(lines) + "\n")
    elif tamper == "nan":
        vectors = np.load(path)
        vectors[0, 0] = np.nan
        np.save(path, vectors)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{file} does not match the checksum in model.json"):
        _read_everything(saved)


def _read_everything(folder):
    """Load a model folder and read every part of it (vectors and metadata are read on first use)."""
    model = bs.BEDSpaceModel.load(folder)
    model.region_vectors, model.set_metadata  # noqa: B018
    return model


@pytest.mark.parametrize(
    "edit", [{"dim": 8}, {"loss": [0.0]}, {"params": {"epochs": 1}}, {"n_sets": 3}, {"universe": {"name": "hg38"}}]
)
def test_an_edited_manifest_is_refused(saved, edit):
    """model.json carries its own checksum: an edit of any field (parameters, sizes, the universe) is named."""
    _edit_manifest(saved, **edit)
    with pytest.raises(ValueError, match="model.json does not match its own checksum"):
        bs.BEDSpaceModel.load(saved)


def test_a_search_reads_only_what_it_needs(saved, trained):
    """r2l by the annotator reads neither the region vectors nor the sets' metadata: damaged, they are not seen."""
    data, adata = trained
    expected = bs.BEDSpaceModel.from_anndata(adata).search(data.files[2], search_type="r2l")
    (saved / "region_vectors.npy").write_bytes(b"damaged")
    (saved / "sets.h5ad").write_bytes(b"damaged")
    model = bs.BEDSpaceModel.load(saved)
    pd.testing.assert_frame_equal(model.search(data.files[2], search_type="r2l"), expected)
    with pytest.raises(ValueError, match="region_vectors.npy does not match the checksum"):
        model.search(data.files[2], search_type="r2r")


def test_damaged_contents_are_refused_even_with_matching_checksums(saved):
    """A folder whose manifest was rewritten to match damaged files still fails, naming the file."""
    from bedspace._folder import _manifest_digest
    from bedspace._folder import fingerprint as _fingerprint

    def reseal():
        manifest = json.loads((saved / "model.json").read_text())
        for entry in manifest["files"].values():
            entry.update(_fingerprint(saved / entry["name"]))
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        (saved / "model.json").write_text(json.dumps(manifest))

    sets = np.load(saved / "region_vectors.npy")
    np.save(saved / "region_vectors.npy", sets[:, :8])
    reseal()
    with pytest.raises(ValueError, match=r"region_vectors.npy: shape \(\d+, 8\), expected"):
        _read_everything(saved)
    np.save(saved / "region_vectors.npy", sets)
    labels = np.load(saved / "label_vectors.npy")
    labels[1, 3] = np.inf
    np.save(saved / "label_vectors.npy", labels)
    reseal()
    with pytest.raises(ValueError, match="label vectors hold 1 non-finite value"):
        bs.BEDSpaceModel.load(saved)


def test_a_model_saved_by_bedspace_0_1_still_loads(trained, tmp_path):
    """Format 1 folders (sets as CSV, no checksums) are read."""
    from bedspace._formats.bed import write_bed

    _, adata = trained
    model = bs.BEDSpaceModel.from_anndata(adata)
    folder = tmp_path / "old"
    folder.mkdir()
    write_bed(model.universe.regions[["chrom", "start", "end"]], folder / "universe.bed.gz")
    np.save(folder / "region_vectors.npy", model.region_vectors)
    model.labels.to_csv(folder / "labels.tsv", sep="\t", index=False)
    np.save(folder / "label_vectors.npy", model.label_vectors)
    model.set_metadata.to_csv(folder / "sets.csv.gz", index_label="name")
    np.save(folder / "set_vectors.npy", model.set_vectors)
    files = {"universe": "universe.bed.gz", "regions": "region_vectors.npy", "labels": "labels.tsv",
             "label_vectors": "label_vectors.npy", "sets": "sets.csv.gz", "set_vectors": "set_vectors.npy"}  # fmt: skip
    (folder / "model.json").write_text(
        json.dumps({"format": "bedspace-model", "format_version": 1, "dim": 16, "files": files, "params": {}})
    )
    old = bs.BEDSpaceModel.load(folder)
    np.testing.assert_array_equal(old.region_vectors, model.region_vectors)
    assert old.set_names.tolist() == model.set_names.tolist()


FORMAT_2 = Path(__file__).parent / "data" / "format2_insulators"


@pytest.mark.parametrize(
    "resave", [False, True, "h5ad"], ids=["format 2", "saved again as format 3", "an .h5ad of format 2's time"]
)
def test_a_format_2_folder_loads_and_answers_identically(tmp_path, resave, monkeypatch):
    """The answers a format-2 folder gave when it was written (see tests/data/format2_insulators/README.md)."""
    from bedspace.annotate import RegionAnnotator

    def no_fitting(*args, **kwargs):
        raise AssertionError("the annotator format 2 kept was fitted again")

    monkeypatch.setattr(RegionAnnotator, "fit", no_fitting)
    if resave == "h5ad":  # what bedspace distances wrote then: the annotator and its classifier in uns
        model = bs.BEDSpaceModel.from_anndata(ad.read_h5ad(FORMAT_2 / "distances.h5ad"))
        resave = False
    else:
        model = bs.BEDSpaceModel.load(FORMAT_2 / "model")
    assert model.annotator is not None and model.annotator.is_calibrated
    if resave:
        model = bs.BEDSpaceModel.load(model.save(tmp_path / "model"))
    query = str(Path(bs.datasets.insulators().beds) / "CTCF_Kc_Bushey_2009.bed.gz")
    searches = {
        "r2l": {"query": query, "search_type": "r2l"},
        "r2l_stored": {"query": model.set_names[1], "search_type": "r2l"},
        "l2r": {"query": "cell_type=Kc", "search_type": "l2r"},
        "r2r": {"query": query, "search_type": "r2r"},
        "r2r_embedding": {"query": query, "search_type": "r2r", "method": "embedding"},
    }
    for name, options in searches.items():
        expected = (FORMAT_2 / f"{name}.tsv").read_text()
        got = model.search(**options).to_csv(sep="\t", index=False)
        if name == "l2r":
            # since issue 24 l2r lists the sets carrying the label first, with their probability and a has_label
            # column: the same score for every set, in the new order
            got = model.search(**options, top_k=len(model.set_names)).to_csv(sep="\t", index=False)
            expected, got = (pd.read_csv(io.StringIO(text), sep="\t") for text in (expected, got))
            assert got["has_label"].tolist() == sorted(got["has_label"], reverse=True)
            merged = got.merge(expected[["name", "score"]], on="name", suffixes=("", "_format2"))
            assert len(merged) == len(expected)
            # format 2 listed the probability as the score when calibrated
            ranked_by = "probability" if "probability" in got.columns else "score"
            np.testing.assert_array_equal(merged[ranked_by], merged["score_format2"])
        elif name.startswith("r2r"):
            # cosines of float32 vectors: the last bit depends on the machine's BLAS and numba build; from a format-3
            # folder the query's vector comes from float16 region vectors. The same ranking either way.
            expected, got = (pd.read_csv(io.StringIO(text), sep="\t") for text in (expected, got))
            assert got["name"].tolist() == expected["name"].tolist(), name
            np.testing.assert_allclose(got["score"], expected["score"], atol=2e-3 if resave else 1e-6)
        else:  # the annotator's answers do not depend on the vectors: exactly as format 2 gave them
            assert got == expected, name


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
    tsv.write_text(f"{region}\t0.1\tnan\n")
    with pytest.raises(ValueError, match="line 1: .*non-finite"):
        bs.BEDSpaceModel.from_starspace(tsv, universe=data.universe)


def test_embed_unknown_set_warns(trained):
    model = bs.BEDSpaceModel.from_anndata(trained[1])
    frame = pd.DataFrame({"Chromosome": ["chr2L"], "Start": [1], "End": [2]})
    with pytest.warns(bs.BEDSpaceWarning, match="zero vector.*query"):
        vector = model.embed(frame)
    assert not vector.any()


def test_to_anndata_works_with_the_tools(trained, tmp_path):
    _, adata = trained
    model = bs.BEDSpaceModel.load(bs.BEDSpaceModel.from_anndata(adata).save(tmp_path / "m"))
    again = model.to_anndata()
    bs.tl.distances(again)
    assert again.obsm["bedspace_label_similarity"].shape == (8, 6)
    again.write_h5ad(tmp_path / "again.h5ad")
    bare = model.with_reference(None)
    with pytest.raises(ValueError, match="carries no region sets"):
        bare.to_anndata()
    with pytest.raises(ValueError, match="carries no region sets to search"):
        bare.search("target=CTCF", search_type="l2r")


def test_constructor_checks(trained):
    model = bs.BEDSpaceModel.from_anndata(trained[1])
    with pytest.raises(ValueError, match="region vectors for"):
        bs.BEDSpaceModel(model.universe, model.region_vectors[:-1], model.label_table, model.label_vectors)
    with pytest.raises(ValueError, match="dimension"):
        bs.BEDSpaceModel(model.universe, model.region_vectors, model.label_table, model.label_vectors[:, :3])
    broken = model.region_vectors.copy()
    broken[5, 2] = np.nan
    with pytest.raises(ValueError, match="region vectors hold 1 non-finite value.*row 5"):
        bs.BEDSpaceModel(model.universe, broken, model.label_table, model.label_vectors)
