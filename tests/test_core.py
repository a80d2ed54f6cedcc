"""The core objects — universe, labels, hyperparameters — and the seams between the layers (offline, bundled data)."""

from __future__ import annotations

import argparse
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._labels import LabelTable
from bedspace._params import DEFAULTS, TrainParams
from bedspace._universe import Universe


@pytest.fixture(scope="module")
def insulators():
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)
    return data, adata


@pytest.fixture(scope="module")
def trained(insulators):
    _, adata = insulators
    return bs.tl.train(adata, labels=["target", "cell_type"], dim=12, epochs=4, n_threads=1, copy=True)


# -- the universe ---------------------------------------------------------------------------------------------
def test_universe_names_and_sources_agree(insulators):
    data, adata = insulators
    from_file = Universe.load(data.universe)
    from_var = Universe.from_anndata(adata)
    from_frame = Universe.load(bs.io.read_bed(data.universe))
    assert from_file.names[0] == f"{adata.var['chrom'].iloc[0]}:{adata.var['start'].iloc[0]}-{adata.var['end'].iloc[0]}"
    for other in (from_var, from_frame):
        assert from_file.same_as(other) and from_file.names.equals(other.names)
    # a frame indexed 0, 1, ... (as a model's universe once was) still gets chr:start-end names
    plain = Universe(adata.var[["chrom", "start", "end"]].reset_index(drop=True))
    assert plain.names.equals(adata.var_names)


def test_same_as_compares_chromosomes_too(insulators):
    _, adata = insulators
    universe = Universe.from_anndata(adata)
    renamed = adata.var[["chrom", "start", "end"]].copy()
    renamed["chrom"] = renamed["chrom"].cat.rename_categories(lambda c: c.replace("chr", "") + "_other")
    assert not universe.same_as(renamed)
    assert "chromosome differs at region 0" in universe.difference(renamed)
    shifted = adata.var[["chrom", "start", "end"]].copy()
    shifted.iloc[7, 1] += 1
    assert universe.difference(shifted).startswith("start differs at region 7")
    assert universe.difference(adata.var.iloc[:-1]) == f"{adata.n_vars - 1:,} regions instead of {adata.n_vars:,}"
    model = bs.BEDSpaceModel(universe, np.ones((len(universe), 2)), LabelTable(["a"], ["b"]), np.ones((1, 2)))
    assert not model.has_universe(renamed)


def test_tile_universe_chromosome_sizes_reach_the_collection(insulators):
    data, _ = insulators
    tiles = bs.pp.tile_universe({"chr2L": 23_011_544, "chr3R": 27_905_053}, 50_000)
    adata = bs.pp.tokenize(data.files[:2], tiles)
    assert adata.uns["bedspace"]["universe"]["chrom_sizes"] == {"chr2L": 23_011_544, "chr3R": 27_905_053}
    assert adata.uns["bedspace"]["universe"]["name"] == "tiles_50000bp"


def test_universe_of_an_anndata_is_built_once(insulators):
    _, adata = insulators
    adata = adata.copy()
    first = Universe.from_anndata(adata)
    assert Universe.from_anndata(adata) is first
    first.index  # noqa: B018  (built once, then reused by every query)
    assert Universe.from_anndata(adata).__dict__.get("index") is first.index
    adata.var["start"] = adata.var["start"] + 1  # a changed .var is noticed
    assert Universe.from_anndata(adata) is not first


def test_universe_errors():
    with pytest.raises(ValueError, match=r"no \['end'\] column"):
        Universe(pd.DataFrame({"chrom": ["chr1"], "start": [0]}))
    with pytest.raises(ValueError, match="column start, row 1: not an integer"):
        Universe(pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [0, 1.5], "end": [5, 6]}))
    with pytest.raises(TypeError, match="universe must be a BED path"):
        Universe.load(42)


# -- the labels -----------------------------------------------------------------------------------------------
def test_label_table_from_obs_keeps_fields_apart():
    obs = pd.DataFrame(
        {"tissue": ["blood", "liver", None], "cell": ["blood", "T cell", "T cell"]}, index=["a", "b", "c"]
    )
    table, assignment = LabelTable.from_obs(obs, ["tissue", "cell"])
    assert table.names.tolist() == ["tissue=blood", "tissue=liver", "cell=T cell", "cell=blood"]
    assert assignment.counts().tolist() == [2, 2, 1]
    assert table.names[assignment.idx].tolist() == [
        "tissue=blood", "cell=blood", "tissue=liver", "cell=T cell", "cell=T cell",
    ]  # fmt: skip
    assert LabelTable.from_tokens(table.tokens()) == table
    assert table.codes("cell", pd.Series(["T cell", "x", None])).tolist() == [0, -1, -1]


# -- hyperparameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be a whole number >= 1, got 0"),
        ("batch_size", -1, "batch_size must be a whole number >= 1, got -1"),
        ("dim", 2.5, "dim must be a whole number, got 2.5"),
        ("epochs", "ten", "epochs must be a whole number, got 'ten'"),
        ("lr", math.inf, "lr must be a finite number, got inf"),
        ("lr", 0.0, r"lr must be in \(0, inf\), got 0.0"),
        ("lr", -0.1, r"lr must be in \(0, inf\)"),
        ("margin", math.nan, "margin must be a finite number, got nan"),
        ("margin", -0.5, r"margin must be in \[0, inf\)"),
        ("dropout", 1.0, r"dropout must be in \[0, 1\), got 1.0"),
        ("neg_search_limit", 0, "neg_search_limit must be a whole number >= 1"),
        ("max_neg_samples", 0, "max_neg_samples must be a whole number >= 1"),
        ("loss", "hinges", "loss must be one of"),
    ],
)
def test_bad_hyperparameters_are_refused_before_training(insulators, option, value, message):
    _, adata = insulators
    with pytest.raises(ValueError, match=message):
        bs.tl.train(adata, labels="target", copy=True, **{option: value})


def test_hyperparameters_have_one_home(trained):
    assert TrainParams.from_options(dim=np.int64(8), lr=np.float32(0.1)).dim == 8
    with pytest.raises(TypeError, match="unknown training option"):
        TrainParams.from_options(learning_rate=0.1)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        bs.tl.train(trained, labels="target", n_threads=0, copy=True)
    recorded = trained.uns["bedspace"]["params"]
    for name, default in DEFAULTS.record().items():
        assert name in recorded, name
        if name not in ("dim", "epochs"):
            assert recorded[name] == default, name
    from bedspace.cli import build_parser

    # the command line's StarSpace options are unset unless given (then StarSpace's objective, at these defaults)
    parser = build_parser()
    train_args = parser.parse_args(["train", "-i", "x", "-o", "y"])
    assert (train_args.space, train_args.dim, train_args.epochs, train_args.lr) == (None, None, None, None)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_help = " ".join(commands.choices["train"].format_help().split())
    for option, default in (("--dim", DEFAULTS.dim), ("--epochs", DEFAULTS.epochs), ("--lr", DEFAULTS.lr)):
        assert f"{option} " in train_help and f"default: {default})" in train_help, option


# -- the seams: embed a query collection, lay out, round trips ------------------------------------------------
def test_embed_query_collection_like_ingest(insulators, trained, tmp_path):
    data, _ = insulators
    query = bs.pp.tokenize(data.files[2:5], trained)
    bs.tl.embed(query, trained)
    np.testing.assert_allclose(query.obsm["X_bedspace"], trained.obsm["X_bedspace"][2:5], atol=1e-6)
    assert query.uns["bedspace"]["reference"] == {"key": "bedspace", "n_sets": 8}
    assert "tokenize" in query.uns["bedspace"]  # what tokenize recorded is kept
    bs.tl.distances(query, n_neighbors=2)
    assert query.obsm["bedspace_label_similarity"].shape == (3, 6)
    query.write_h5ad(tmp_path / "query.h5ad")
    back = ad.read_h5ad(tmp_path / "query.h5ad")
    np.testing.assert_array_equal(back.obsm["X_bedspace"], query.obsm["X_bedspace"])
    other = bs.pp.tokenize(data.files[:2], bs.pp.tile_universe({"chr2L": 10_000_000}, 10_000))
    with pytest.raises(ValueError, match="the query AnnData is not on the universe"):
        bs.tl.embed(other, trained)


def test_layout_writes_and_survives_h5ad(trained, tmp_path):
    adata = bs.tl.layout(trained, basis="pca", copy=True)
    assert adata.obsm["X_bedspace_pca"].shape == (8, 2)
    placed = adata.uns["bedspace_pca"]
    assert len(placed["labels"]) == placed["label_coordinates"].shape[0] == 6
    adata.write_h5ad(tmp_path / "l.h5ad")
    back = ad.read_h5ad(tmp_path / "l.h5ad")
    np.testing.assert_array_equal(back.uns["bedspace_pca"]["label_coordinates"], placed["label_coordinates"])
    with pytest.raises(ValueError, match="basis must be one of"):
        bs.tl.layout(trained, basis="tsne", copy=True)


def test_search_through_the_anndata_reuses_its_model(trained):
    from bedspace.tl._collection import searchable

    first = searchable(trained)
    assert searchable(trained) is first
    copy = trained.copy()
    assert searchable(copy) is not first
    copy.obsm["X_bedspace"] = copy.obsm["X_bedspace"] * 2  # new arrays: a new model
    assert searchable(copy).set_vectors[0, 0] == pytest.approx(2 * first.set_vectors[0, 0])
