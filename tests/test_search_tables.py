"""The tables of sets (l2r, r2r): the label fields by default, other ``.obs`` columns on request (issue 25)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import bedspace as bs

FIELDS = ["organ", "cell_class", "assay"]  # what hg19_trained was trained on
L2R = ["rank", "name", "score", "probability", "has_label"]
R2R = ["rank", "name", "score", "cosine", "shared_labels"]
FLY_FIELDS = ["target", "cell_type"]


def _same_as_obs(table: pd.DataFrame, obs: pd.DataFrame, columns: list[str]) -> None:
    """Each hit's metadata is its own set's, value and dtype."""
    for column in columns:
        expected = obs[column].loc[table["name"]].reset_index(drop=True)
        pd.testing.assert_series_equal(table[column], expected, check_names=False, obj=column)


@pytest.fixture(scope="module")
def query(hg19, hg19_trained):
    _, test = hg19_trained
    return hg19.beds / test.obs_names[test.obs["assay"] == "DNase-seq"][0]


def test_tables_of_sets_show_the_label_fields_only(hg19_trained, query):
    train, _ = hg19_trained
    assert {"source_commit", "source_path", "accession", "n_regions", "lab"} <= set(train.obs.columns)
    expected = {
        ("l2r", None): [*L2R, *FIELDS],
        ("l2r", "embedding"): ["rank", "name", "score", "has_label", *FIELDS],
        ("r2r", None): [*R2R, *FIELDS],
        ("r2r", "embedding"): ["rank", "name", "score", *FIELDS],
    }
    for (search_type, method), columns in expected.items():
        what = "organ=blood" if search_type == "l2r" else query
        table = bs.tl.search(train, what, search_type=search_type, method=method, top_k=7)
        assert list(table.columns) == columns, (search_type, method)
        assert len(table) == 7
        _same_as_obs(table, train.obs, FIELDS)
    several = bs.tl.search(train, ["organ=blood", "assay=DNase-seq"], search_type="l2r", top_k=3)
    assert list(several.columns) == ["query", *L2R, *FIELDS]
    several = bs.tl.search(train, train.obs_names[:2].tolist(), search_type="r2r", top_k=3)
    assert list(several.columns) == ["query", *R2R, *FIELDS]


def test_obs_columns_adds_columns_by_name(hg19_trained, query):
    train, _ = hg19_trained
    table = bs.tl.search(train, query, search_type="r2r", top_k=6, obs_columns=["lab", "n_regions"])
    assert list(table.columns) == [*R2R, *FIELDS, "lab", "n_regions"]
    _same_as_obs(table, train.obs, [*FIELDS, "lab", "n_regions"])
    default = bs.tl.search(train, query, search_type="r2r", top_k=6)
    pd.testing.assert_frame_equal(table[default.columns], default)  # the same hits, more columns
    one = bs.tl.search(train, "organ=blood", search_type="l2r", top_k=6, obs_columns="accession")  # one name
    assert list(one.columns) == [*L2R, *FIELDS, "accession"]
    as_array = bs.tl.search(train, "organ=blood", search_type="l2r", top_k=6, obs_columns=np.array(["accession"]))
    pd.testing.assert_frame_equal(as_array, one)
    _same_as_obs(one, train.obs, ["accession"])
    # in the order asked for, after the label fields; a label field asked for again is not repeated
    again = bs.tl.search(train, "organ=blood", search_type="l2r", top_k=6, obs_columns=["treatment", "organ", "lab"])
    assert list(again.columns) == [*L2R, *FIELDS, "treatment", "lab"]
    assert bs.tl.search(train, "organ=blood", search_type="l2r", top_k=6, obs_columns=[]).columns.tolist() == [
        *L2R, *FIELDS
    ]  # fmt: skip
    # the model's search takes the same option
    model = bs.BEDSpaceModel.from_anndata(train)
    by_model = model.search("organ=blood", search_type="l2r", top_k=6, obs_columns="accession")
    pd.testing.assert_frame_equal(by_model, one)


def test_obs_columns_all_shows_every_obs_column(hg19_trained, query):
    train, _ = hg19_trained
    everything = list(train.obs.columns)
    for value in ("all", True, np.True_):
        table = bs.tl.search(train, "organ=blood", search_type="l2r", top_k=5, obs_columns=value)
        assert list(table.columns) == [*L2R, *everything], value
        _same_as_obs(table, train.obs, everything)
    table = bs.tl.search(train, query, search_type="r2r", method="embedding", top_k=5, obs_columns="all")
    assert list(table.columns) == ["rank", "name", "score", *everything]
    none = bs.tl.search(train, query, search_type="r2r", top_k=5, obs_columns=False)
    assert list(none.columns) == R2R


def test_an_unknown_column_is_an_error_listing_the_columns(hg19_trained, query):
    train, _ = hg19_trained
    for search_type, what in (("l2r", "organ=blood"), ("r2r", query)):
        with pytest.raises(KeyError, match=r"no metadata column\(s\) \['labb'\]") as caught:
            bs.tl.search(train, what, search_type=search_type, obs_columns=["lab", "labb"])
        assert all(repr(str(c)) in str(caught.value) for c in train.obs.columns), caught.value
    with pytest.raises(KeyError, match=r"no metadata column\(s\) \['All'\]"):  # "all" is the only spelling
        bs.tl.search(train, "organ=blood", search_type="l2r", obs_columns="All")
    # before any work: the query is not read
    with pytest.raises(KeyError, match=r"no metadata column\(s\) \['labb'\]"):
        bs.tl.search(train, "no/such/file.bed", search_type="r2r", obs_columns="labb")


def test_obs_columns_with_r2l_or_of_another_type_is_an_error(hg19_trained, query):
    train, _ = hg19_trained
    for value in ("lab", ["organ"], "all", True, False):
        with pytest.raises(ValueError, match="obs_columns is an option of l2r and r2r"):
            bs.tl.search(train, query, search_type="r2l", obs_columns=value)
    for value in (3, ["lab", 3], {"lab"}):
        with pytest.raises(ValueError, match="obs_columns must be a metadata column's name, a list of names"):
            bs.tl.search(train, "organ=blood", search_type="l2r", obs_columns=value)
    # r2l tables are as they were
    table = bs.tl.search(train, query, search_type="r2l", field="organ", top_k=2)
    assert list(table.columns) == ["field", "rank", "name", "value", "probability", "score", "in_domain", "evidence"]


def test_tables_survive_a_csv_round_trip(hg19_trained, query, tmp_path):
    train, _ = hg19_trained
    tables = {
        "l2r": bs.tl.search(train, "organ=blood", search_type="l2r", top_k=20),
        "l2r several": bs.tl.search(train, ["organ=blood", "assay=ATAC-seq"], search_type="l2r", top_k=5),
        "r2r": bs.tl.search(train, query, search_type="r2r", top_k=20),
        "r2r lab": bs.tl.search(train, query, search_type="r2r", top_k=20, obs_columns=["lab", "n_regions"]),
    }
    for name, table in tables.items():
        table.to_csv(tmp_path / "hits.csv", index=False)
        back = pd.read_csv(tmp_path / "hits.csv")
        assert list(back.columns) == list(table.columns), name
        # every number exactly; the label columns come back as text instead of categories
        pd.testing.assert_frame_equal(back, table, check_dtype=False, check_categorical=False, check_exact=True)


@pytest.fixture(scope="module")
def fly(tmp_path_factory):
    """The fly sets trained on target and cell type, with a column missing for most sets; saved as a model folder."""
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    adata.obs["note"] = ["checked"] + [None] * (adata.n_obs - 1)
    bs.tl.train(adata, labels=FLY_FIELDS, dim=8, epochs=3, n_threads=1, random_state=0)
    folder = bs.BEDSpaceModel.from_anndata(adata).save(tmp_path_factory.mktemp("fly") / "model")
    return data, adata, folder


def test_fly_tables_and_a_column_named_like_the_tables(fly):
    data, adata, _ = fly
    query = data.beds / "CTCF_Kc_Bushey_2009.bed.gz"
    table = bs.tl.search(adata, query, search_type="r2r", top_k=3)
    assert list(table.columns[-2:]) == FLY_FIELDS and not {"assay", "genome", "note"} & set(table.columns)
    table = bs.tl.search(adata, "cell_type=Kc", search_type="l2r", top_k=3, obs_columns=["note", "genome"])
    assert list(table.columns[-4:]) == [*FLY_FIELDS, "note", "genome"]
    clashing = adata.copy()
    clashing.obs["score"] = 0.0
    with pytest.raises(ValueError, match=r"metadata column\(s\) \['score'\] cannot be shown"):
        bs.tl.search(clashing, "cell_type=Kc", search_type="l2r", obs_columns="score")
    every = bs.tl.search(clashing, "cell_type=Kc", search_type="l2r", top_k=3, obs_columns="all")
    assert list(every.columns).count("score") == 1 and (every["score"] != 0).all()  # the table's own score


def test_the_command_line_shows_the_python_table(cli, fly, tmp_path):
    data, _, folder = fly
    model = bs.BEDSpaceModel.load(folder)
    query = str(data.beds / "CTCF_Kc_Bushey_2009.bed.gz")

    def run(*args, check=True):
        return cli("search", "-d", folder, *args, cwd=tmp_path, check=check)

    def tsv(*args):
        return pd.read_csv(io.StringIO(run(*args, "--format", "tsv").stdout), sep="\t")

    for search_type, what in (("l2r", "cell_type=Kc"), ("r2r", query)):
        python = model.search(what, search_type=search_type)
        shown = tsv("-t", search_type, "-q", what)
        assert list(shown.columns) == list(python.columns) and list(shown.columns[-2:]) == FLY_FIELDS, search_type
        assert shown["name"].tolist() == python["name"].tolist()
        np.testing.assert_allclose(shown["score"], python["score"], atol=5e-5)  # rounded to 4 decimals
        more = tsv("-t", search_type, "-q", what, "--columns", "genome, n_regions")
        assert list(more.columns) == [*python.columns, "genome", "n_regions"]
        every = tsv("-t", search_type, "-q", what, "--columns", "all")
        assert list(every.columns) == list(model.search(what, search_type=search_type, obs_columns="all").columns)
        assert "bedspace_in_training" in every.columns
    # json: a missing value is null (json has no NaN)
    out = run("-t", "l2r", "-q", "cell_type=Kc", "-n", "8", "--columns", "note", "--format", "json").stdout
    hits = json.loads(out, parse_constant=lambda constant: pytest.fail(f"not json: {constant}"))
    assert sorted(h["note"] for h in hits if h["note"] is not None) == ["checked"]
    assert sum(h["note"] is None for h in hits) == 7
    # mistakes: one line each
    unknown = run("-t", "r2r", "-q", query, "--columns", "genome,lab", check=False)
    assert unknown.returncode == 1 and "no metadata column(s) ['lab']" in unknown.stderr
    assert "'n_regions'" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    r2l = run("-t", "r2l", "-q", query, "--columns", "genome", check=False)
    assert r2l.returncode == 1 and "--columns is an option of -t l2r and r2r only" in r2l.stderr
    helped = cli("search", "--help", cwd=tmp_path).stdout
    assert "--columns COLUMNS" in helped and "--columns all" in helped
