"""``bs.tl.explain``: a label's score split exactly over the query's regions and the reference sets."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._atomic import NotReplaceableError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def held_out(slice_trained, hg19_slice):
    """A held-out DNase set of the bundled slice: its BED file, its organ."""
    train, test = slice_trained
    dnase = test.obs[(test.obs["assay"] == "DNase-seq") & (test.obs["n_tokens"] > 1000)]
    name = dnase.index[0]
    return hg19_slice.beds / name, dnase.loc[name, "organ"]


def _r2l_score(train, query, label: str) -> float:
    field = label.split("=", 1)[0]
    table = bs.tl.search(train, query, search_type="r2l", field=field, top_k=1000)
    return float(table.loc[table["name"] == label, "score"].iloc[0])


def _check_sums(why) -> None:
    """Every label's score is its baseline plus its regions' (and its sets') parts, to float."""
    for entry in why.labels.itertuples():
        regions = why.regions[why.regions["label"] == entry.label]
        sets = why.sets[why.sets["label"] == entry.label]
        assert entry.n_regions == len(regions)  # top_k=None: every region of the query
        assert entry.baseline + regions["contribution"].sum() == pytest.approx(entry.score, abs=1e-10)
        assert entry.baseline + sets["weight"].sum() == pytest.approx(entry.score, abs=1e-10)
        assert regions["share"].sum() == pytest.approx(1.0)


def test_contributions_sum_to_the_score_r2l_reports(slice_trained, held_out):
    train, _ = slice_trained
    path, organ = held_out
    why = bs.tl.explain(train, path, top_k=None)
    assert why.labels["field"].tolist() == ["organ", "cell_class", "assay"]  # the top label of each field
    top = bs.tl.search(train, path, search_type="r2l", top_k=1)
    assert why.labels["label"].tolist() == top["name"].tolist()
    assert np.allclose(why.labels["score"], top["score"], atol=1e-10)
    assert np.allclose(why.labels["probability"], top["probability"])
    assert not why.labels["left_out"].any()
    _check_sums(why)
    regions = why.regions[why.regions["label"] == why.labels["label"].iloc[0]]
    assert (np.diff(regions["contribution"].to_numpy()) <= 0).all()  # largest first
    assert {"chrom", "start", "end", "n_label_sets", "n_other_sets"} <= set(regions.columns)
    assert why.sets.columns[:8].tolist() == [
        "field", "label", "rank", "name", "weight", "share", "shared_regions", "has_label",
    ]  # fmt: skip
    assert {"organ", "cell_class", "assay"} <= set(why.sets.columns)
    # any label, not only the top one: the score r2l gives it, split the same way
    other = bs.tl.search(train, path, search_type="r2l", field="organ", top_k=3)["name"].iloc[2]
    why = bs.tl.explain(train, path, label=other, top_k=None)
    assert why.labels["score"].iloc[0] == pytest.approx(_r2l_score(train, path, other), abs=1e-10)
    _check_sums(why)


def test_a_thinned_query_is_lifted_and_still_exact(slice_trained, held_out):
    """Few regions of a set: its overlaps are scaled up (lift > 1) and the split still sums to r2l's score."""
    train, _ = slice_trained
    path, _ = held_out
    frame = bs.io.read_bed(path).iloc[::20]
    frame = pd.DataFrame({"chrom": frame["Chromosome"].astype(str), "start": frame["Start"], "end": frame["End"]})
    why = bs.tl.explain(train, frame, field="organ", top_k=None)
    assert why.labels["lift"].iloc[0] > 1
    assert why.labels["score"].iloc[0] == pytest.approx(
        _r2l_score(train, frame, why.labels["label"].iloc[0]), abs=1e-10
    )
    _check_sums(why)


def test_a_stored_set_by_name_is_explained_from_the_other_sets(slice_trained):
    train, _ = slice_trained
    name = train.obs_names[train.obs["assay"] == "DNase-seq"][0]
    why = bs.tl.explain(train, name, label=f"organ={train.obs.loc[name, 'organ']}", top_k=None)
    assert why.query == name and why.labels["left_out"].all() and why.labels["lift"].iloc[0] == 1
    assert name not in set(why.sets["name"])  # not its own evidence
    assert why.labels["score"].iloc[0] == pytest.approx(_r2l_score(train, name, why.labels["label"].iloc[0]), abs=1e-8)
    _check_sums(why)


def test_removing_the_top_regions_lowers_the_score_more_than_random_ones(slice_trained, held_out):
    train, _ = slice_trained
    path, organ = held_out
    label = f"organ={organ}"
    why = bs.tl.explain(train, path, label=label, top_k=None)
    regions = why.regions[["chrom", "start", "end"]]
    k = max(len(regions) // 20, 10)
    full = why.labels["score"].iloc[0]
    drop_top = full - _r2l_score(train, regions.iloc[k:], label)
    rng = np.random.default_rng(0)
    drop_random = np.mean(
        [
            full - _r2l_score(train, regions.drop(index=rng.choice(regions.index, k, replace=False)), label)
            for _ in range(3)
        ]
    )
    assert drop_top > 3 * max(drop_random, 0.0) and drop_top > 0
    # the drop is about what the removed regions contributed (the query's size and lift change a little)
    assert drop_top == pytest.approx(why.regions["contribution"].iloc[:k].sum(), rel=0.5)


def test_an_unknown_label_or_field_is_an_error_naming_the_labels(slice_trained, held_out):
    train, _ = slice_trained
    path, organ = held_out
    with pytest.raises(KeyError, match=r"unknown label 'organ=livr'.*the labels of 'organ' are \[.*organ="):
        bs.tl.explain(train, path, label="organ=livr")
    with pytest.raises(KeyError, match=r"unknown label 'nonsense'.*fields are"):
        bs.tl.explain(train, path, label="nonsense")
    with pytest.raises(KeyError, match="no label field 'tissue'"):
        bs.tl.explain(train, path, field="tissue")
    with pytest.raises(ValueError, match="one query, got 2"):
        bs.tl.explain(train, [path, path.with_name(train.obs_names[0])])
    with pytest.raises(ValueError, match="top_k"):
        bs.tl.explain(train, path, top_k=0)


def test_the_bed_file_is_written_atomically_and_read_back(slice_trained, held_out, tmp_path):
    train, _ = slice_trained
    path, _ = held_out
    why = bs.tl.explain(train, path, top_k=50)
    out = why.write_bed(tmp_path / "why.bed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["why.bed"]  # no temporary file left
    lines = out.read_text().splitlines()
    assert lines[0].startswith('track name="bedspace explain') and "useScore=1" in lines[0]
    positive = why.regions[why.regions["contribution"] > 0]
    read = bs.io.read_bed(out)
    assert len(read) == len(positive) == len(lines) - 1
    fields = [line.split("\t") for line in lines[1:]]
    assert {f[3] for f in fields} == {label.replace(" ", "_") for label in why.labels["label"]}
    assert all(0 <= int(f[4]) <= 1000 and f[5] == "." for f in fields)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        why.write_bed(out)
    why.write_bed(out, overwrite=True)
    gz = why.write_bed(tmp_path / "why.bed.gz")
    assert len(bs.io.read_bed(gz)) == len(positive)
    other = tmp_path / "mine.bed"
    other.write_text("chr21\t1\t2\n")
    with pytest.raises(NotReplaceableError):
        why.write_bed(other, overwrite=True)
    assert other.read_text() == "chr21\t1\t2\n"


def test_the_command_line_writes_the_bed_and_prints_the_evidence(slice_trained, held_out, tmp_path, cli):
    train, _ = slice_trained
    path, organ = held_out
    bs.BEDSpaceModel.from_anndata(train).save(tmp_path / "model")
    run = cli("search", "-t", "r2l", "-d", "model", "-q", path, "--explain", "why.bed", "-n", "3", cwd=tmp_path)
    assert "top regions for organ=" in run.stdout and "reference sets weighing most" in run.stdout
    assert "wrote" in run.stderr and len(bs.io.read_bed(tmp_path / "why.bed")) > 0
    run = cli(
        "search", "-t", "r2l", "-d", "model", "-q", path, "--explain", "why.bed", "--label", f"organ={organ}",
        "--overwrite", "--format", "tsv", cwd=tmp_path,
    )  # fmt: skip
    assert run.stdout.startswith("# labels") and f"organ={organ}" in run.stdout
    refused = cli("search", "-t", "r2r", "-d", "model", "-q", path, "--explain", "x.bed", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "--explain is an option of -t r2l" in refused.stderr
    refused = cli("search", "-t", "r2l", "-d", "model", "-q", path, "--explain", "why.bed", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr


def test_the_plot_draws(slice_trained, held_out, tmp_path):
    import matplotlib.pyplot as plt

    train, _ = slice_trained
    path, _ = held_out
    why = bs.tl.explain(train, path, top_k=30)
    ax = bs.pl.explain(why, save=tmp_path / "regions.png", show=False)
    assert len(ax.patches) == 20 and "score" in ax.get_title()
    fig, ax = plt.subplots()
    assert bs.pl.explain(why, label=why.labels["label"].iloc[1], kind="sets", n=5, ax=ax, show=False) is ax
    assert len(ax.patches) == 5
    assert (tmp_path / "regions.png").stat().st_size > 0
    with pytest.raises(KeyError, match="no label 'organ=nowhere'"):
        bs.pl.explain(why, label="organ=nowhere", show=False)
    plt.close("all")


def test_an_uncalibrated_model_explains_its_scores(slice_trained, held_out):
    train, _ = slice_trained
    path, _ = held_out
    part = train.copy()
    bs.tl.train(part, labels=["organ", "assay"], epochs=1, dim=8, n_threads=1, calibrate=False)
    why = bs.tl.explain(part, path, top_k=None)
    assert "probability" not in why.labels.columns
    top = bs.tl.search(part, path, search_type="r2l", top_k=1)
    assert why.labels["label"].tolist() == top["name"].tolist()  # by score
    assert np.allclose(why.labels["score"], top["score"], atol=1e-10)
    _check_sums(why)
    ax = bs.pl.explain(why, show=False)
    assert "probability" not in ax.get_title()
