"""``bedspace search -q`` with several files, folders and quoted patterns: one table, each row naming its query.

On the bundled dm3 insulator sets (offline, a model of a few seconds), run in this process (the ``cli`` fixture).
"""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest

import bedspace as bs

CTCF, BEAF, SUHW = "CTCF_Kc_Bushey_2009.bed.gz", "BEAF_Kc_Bushey_2009.bed.gz", "SuHw_Mbn2_Bushey_2009.bed.gz"


@pytest.fixture(scope="module")
def fly(tmp_path_factory):
    """A model folder of the fly sets, and a working folder with query files: ``peaks/`` (two), ``extra/`` (one)."""
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    bs.tl.train(adata, labels=["target", "cell_type"], dim=8, epochs=3, n_threads=1, random_state=0)
    work = tmp_path_factory.mktemp("queries")
    bs.BEDSpaceModel.from_anndata(adata).save(work / "model")
    for folder, names in (("peaks", (CTCF, BEAF)), ("extra", (SUHW,))):
        (work / folder).mkdir()
        for name in names:
            shutil.copy(data.beds / name, work / folder / name)
    return work


@pytest.fixture(scope="module")
def search(cli, fly):
    """``search(*args)`` → the command's result, run in the working folder against the model folder."""

    def run(*args, check=True):
        return cli("search", "-d", "model", *args, cwd=fly, check=check)

    return run


def tsv(result) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(result.stdout), sep="\t")


def test_several_files_one_table_with_a_query_column(search):
    table = tsv(
        search("-t", "r2l", "-q", f"peaks/{CTCF}", f"extra/{SUHW}", "-f", "target", "-n", "2", "--format", "tsv")
    )
    assert table.columns[0] == "query"
    assert table["query"].tolist() == [CTCF, CTCF, SUHW, SUHW]  # the file names, in the order given
    assert table.groupby("query")["rank"].apply(list).tolist() == [[1, 2], [1, 2]]
    best = table[table["rank"] == 1].set_index("query")["value"]
    assert best[CTCF] == "CTCF" and best[SUHW] == "Su(Hw)"
    # each file's rows are what it gets alone (which has no query column, as before)
    alone = tsv(search("-t", "r2l", "-q", f"extra/{SUHW}", "-f", "target", "-n", "2", "--format", "tsv"))
    assert "query" not in alone.columns
    pd.testing.assert_frame_equal(table[table["query"] == SUHW].drop(columns="query").reset_index(drop=True), alone)


def test_a_quoted_pattern_is_expanded_sorted(search, fly):
    table = tsv(search("-t", "r2l", "-q", "peaks/*.bed.gz", "-f", "target", "-n", "1", "--format", "tsv"))
    assert table["query"].tolist() == sorted([CTCF, BEAF])
    # the same table as the two files given by name, sorted; and as the Python search of the pattern
    named = tsv(
        search("-t", "r2l", "-q", f"peaks/{BEAF}", f"peaks/{CTCF}", "-f", "target", "-n", "1", "--format", "tsv")
    )
    pd.testing.assert_frame_equal(table, named)
    model = bs.BEDSpaceModel.load(fly / "model")
    python = model.search([str(fly / "peaks" / "*.bed.gz")], search_type="r2l", field="target", top_k=1)
    assert python["query"].tolist() == table["query"].tolist() and python["name"].tolist() == table["name"].tolist()
    # a pattern of one file is one query: no query column
    one = tsv(search("-t", "r2l", "-q", "peaks/CTCF*", "-f", "target", "-n", "1", "--format", "tsv"))
    assert "query" not in one.columns and one["value"].tolist() == ["CTCF"]


def test_a_folder_and_a_file_mixed(search):
    table = tsv(search("-t", "r2r", "-q", "peaks/", f"extra/{SUHW}", "-n", "2", "--format", "tsv"))
    assert table["query"].tolist() == [BEAF, BEAF, CTCF, CTCF, SUHW, SUHW]  # the folder's files by name, then the file
    assert list(table.columns[:4]) == ["query", "rank", "name", "score"]
    # a file given twice (itself and in its folder) is one query
    twice = tsv(search("-t", "r2r", "-q", "peaks/", f"peaks/{CTCF}", "-n", "2", "--format", "tsv"))
    assert twice["query"].tolist() == [BEAF, BEAF, CTCF, CTCF]


def test_files_of_one_name_in_two_folders_keep_distinct_names(search, fly):
    (fly / "rep2").mkdir(exist_ok=True)
    shutil.copy(fly / "extra" / SUHW, fly / "rep2" / CTCF)  # another file named like peaks/CTCF…
    table = tsv(search("-t", "r2l", "-q", "peaks/*", "rep2/", "-f", "target", "-n", "1", "--format", "tsv"))
    assert table["query"].tolist() == [BEAF, f"peaks/{CTCF}", f"rep2/{CTCF}"]
    assert table["value"].tolist()[1:] == ["CTCF", "Su(Hw)"]


def test_json_and_the_table_carry_the_query(search):
    out = search("-t", "r2r", "-q", "peaks/*.bed.gz", "-n", "2", "--format", "json").stdout
    hits = json.loads(out)
    assert [h["query"] for h in hits] == [BEAF, BEAF, CTCF, CTCF]
    labels = json.loads(search("-t", "r2l", "-q", "peaks/", "-n", "1", "--format", "json").stdout)
    assert {h["query"] for h in labels} == {BEAF, CTCF}
    shown = search("-t", "r2l", "-q", "peaks/", "-f", "target", "-n", "1").stdout.splitlines()
    assert shown[0].split()[0] == "query" and shown[1].split()[0] == BEAF


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (["-t", "r2l", "-q", "nowhere/*.bed.gz"], "query 'nowhere/*.bed.gz': no file matches this pattern"),
        (["-t", "r2r", "-q", "peaks/", "missing.bed"], "query 'missing.bed' is neither a BED file"),
        (["-t", "r2l", "-q", "peaks/", "notes.txt"], "notes.txt, line 1: fewer than 3 tab-separated columns"),
        (["-t", "l2r", "-q", "cell_type=Kc", "target=CTCF"], "-t l2r takes one label, got 2 values"),
        (["-t", "l2r", "-q", "cell_type=Mbn", "2"], 'quote a label with spaces (-q "cell_type=T cell")'),
    ],
)
def test_mistakes_name_the_pattern_or_file(search, fly, query, message):
    (fly / "notes.txt").write_text("not a BED file\n")
    result = search(*query, check=False)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_help_shows_several_queries(cli, tmp_path):
    helped = cli("search", "--help", cwd=tmp_path).stdout
    assert "-q QUERY [QUERY ...]" in helped and "'peaks/*.bed.gz'" in helped
