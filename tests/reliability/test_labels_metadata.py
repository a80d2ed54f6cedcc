"""Labels as written, missing values said, calibration that cannot be fitted, and an annotator of other labels.

Issue 24: metadata labels ``1``, ``01`` and ``1.0`` were read as one number; ``NA``, ``None``, ``null`` became
missing without a word and the preprocess report counted their sets as training lines; a label field with one set
per value stopped ``train`` after the training, writing no model; and a collection relabelled after training was
answered by the annotator of its old labels. Every case asserts the exact behaviour (offline, bundled data).
"""

from __future__ import annotations

import re
import shutil
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._engine import native

DATA = bs.datasets.insulators()
LABELS = ["target", "cell_type"]


def one_warning(record, *fragments) -> str:
    """The one bedspace warning recorded, which must hold every fragment."""
    messages = [str(w.message) for w in record if issubclass(w.category, bs.BEDSpaceWarning)]
    assert len(messages) == 1, messages
    for fragment in fragments:
        assert fragment in messages[0], messages[0]
    return messages[0]


def metadata_with(tmp_path, name: str = "labels.csv", **columns) -> str:
    """The bundled metadata with ``columns`` replaced or added (one value per set), written as CSV or TSV."""
    table = pd.read_csv(DATA.metadata, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        table[column] = values
    path = tmp_path / name
    table.to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False)
    return path


def tokenized(metadata) -> ad.AnnData:
    return bs.pp.tokenize(DATA.beds, DATA.universe, metadata=metadata)


def trained_labels(adata: ad.AnnData, labels) -> list[str]:
    """The ``field=value`` names of the labels a short training learned."""
    bs.tl.train(adata, labels=labels, dim=4, epochs=1, n_threads=1)
    return list(adata.uns["bedspace"]["labels"].index)


# -- 1. labels are read as the text written ------------------------------------------------------------------------
NUMERIC_LOOKING = ["1", "01", "1.0", "2", "1", "01", "1.0", "2"]


@pytest.mark.parametrize("name", ["labels.csv", "labels.tsv"])
def test_numeric_looking_labels_stay_four_labels(tmp_path, name):
    adata = tokenized(metadata_with(tmp_path, name, target=NUMERIC_LOOKING))
    assert adata.obs["target"].astype(str).tolist() == NUMERIC_LOOKING
    names = trained_labels(adata, "target")
    assert sorted(names) == ["target=01", "target=1", "target=1.0", "target=2"]


@pytest.mark.parametrize(
    "pair",
    [["007", "7"], ["+5", "5"], ["1.50", "1.5"], ["1e3", "1000"], ["TRUE", "True"], ["-0", "0"], ["0x1F", "31"]],
    ids=["leading zero", "plus sign", "trailing zero", "exponent", "TRUE", "minus zero", "hex"],
)
def test_text_pandas_would_change_is_kept_as_written(tmp_path, pair):
    values = pair * 4
    adata = tokenized(metadata_with(tmp_path, target=values))
    assert adata.obs["target"].astype(str).tolist() == values
    assert sorted(trained_labels(adata, "target")) == sorted(f"target={v}" for v in pair)


def test_columns_of_numbers_that_lose_nothing_stay_numbers(tmp_path):
    adata = tokenized(
        metadata_with(
            tmp_path,
            score=["0.5", "1.25", "2", "0.5", "3", "1e-05", "7.5", "2"],
            replicate=["1", "2", "", "1", "2", "1", "2", "3"],
            control=["True", "False"] * 4,
            mixed=["1", "1.0", "2", "2", "2", "2", "2", "2"],
        )
    )
    assert adata.obs["n_regions"].dtype == np.int64  # the bundled metadata's counts
    assert adata.obs["score"].dtype == np.float64 and adata.obs["score"].iloc[5] == 1e-05
    assert adata.obs["replicate"].dtype == "Int64" and adata.obs["replicate"].isna().sum() == 1
    assert adata.obs["control"].dtype == bool
    # "1" and "1.0" would be one number: the column stays text
    assert adata.obs["mixed"].astype(str).tolist()[:2] == ["1", "1.0"]
    # and every column survives the .h5ad the command line keeps
    again = ad.AnnData(obs=adata.obs.copy())
    again.write_h5ad(tmp_path / "obs.h5ad")
    pd.testing.assert_frame_equal(ad.read_h5ad(tmp_path / "obs.h5ad").obs, adata.obs, check_categorical=False)


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1, 2] * 4, dtype=np.int64),
        pd.Series([1, 2] * 4, dtype="Int64"),
        pd.Series(pd.Categorical([1, 2] * 4)),
        pd.Series([True, False] * 4),
    ],
    ids=["int64", "Int64", "categories of ints", "bool"],
)
def test_an_obs_column_of_whole_numbers_gives_their_digits(column):
    adata = tokenized(DATA.metadata)
    adata.obs["target"] = column.set_axis(adata.obs_names)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        names = trained_labels(adata, "target")
    expected = ["target=False", "target=True"] if column.dtype == bool else ["target=1", "target=2"]
    assert sorted(names) == expected
    # the labels of the search are those of training: every set has its label's column
    model = bs.BEDSpaceModel.from_anndata(adata)
    codes = model.reference.label_codes(model.label_table)["target"]
    assert (codes >= 0).sum() == column.notna().sum()


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.0, 2.0] * 4),
        pd.Series(pd.Categorical([1.0, 2.5] * 4)),
        pd.Series(["a", 1.0] * 4, dtype=object),
    ],
    ids=["float64", "categories of floats", "objects with a float"],
)
def test_an_obs_column_of_floats_warns_naming_it(column):
    adata = tokenized(DATA.metadata)
    adata.obs["target"] = column.set_axis(adata.obs_names)
    with pytest.warns(bs.BEDSpaceWarning) as record:
        trained_labels(adata, "target")
    one_warning(record, "column 'target' holds floating-point numbers", "dtype=str")


@pytest.mark.parametrize(
    ("values", "shown"),
    [([1, "1"], "1 (int) and '1' (str)"), ([True, "True"], "True (bool) and 'True' (str)")],
    ids=["int and text", "bool and text"],
)
def test_an_obs_column_of_values_that_read_the_same_is_an_error(values, shown):
    adata = tokenized(DATA.metadata)
    adata.obs["target"] = pd.Series(values * 4, dtype=object).to_numpy()
    with pytest.raises(ValueError, match=re.escape(f"column 'target' holds {shown}, which would be one label")):
        bs.tl.train(adata, labels="target", dim=4, epochs=1)
    assert "bedspace" not in adata.varm  # refused before any training


def test_command_line_keeps_numeric_looking_labels(cli, tmp_path):
    work = command_line_folder(tmp_path, target=NUMERIC_LOOKING)
    cli("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target", "-o", "pre.txt", cwd=work)
    tokens = {t for line in (work / "pre.txt").read_text().splitlines() for t in line.split() if "__label__" in t}
    assert tokens == {f"__label__target={v}" for v in ("1", "01", "1.0", "2")}
    cli("train", "-i", "pre.txt", "-o", "model", "--dim", "4", "--epochs", "1", "--threads", "1", cwd=work)
    cli("distances", "-i", "model", "-m", "labels.csv", "-u", "universe.bed", "-o", "d.h5ad", cwd=work)
    written = ad.read_h5ad(work / "d.h5ad")
    assert written.obs["target"].astype(str).tolist() == NUMERIC_LOOKING
    result = cli("search", "-t", "l2r", "-d", "model", "-q", "target=01", "-n", "8", "--format", "tsv", cwd=work)
    assert "target=01" not in result.stderr and result.stdout.count("\n") == 9


def command_line_folder(tmp_path, **columns):
    """A folder laid out as a user has it: beds/, labels.csv (``columns`` replaced) and universe.bed."""
    work = tmp_path / "work"
    shutil.copytree(DATA.beds, work / "beds", ignore=shutil.ignore_patterns("*.csv", "*.md"))
    shutil.copy(metadata_with(tmp_path, **columns), work / "labels.csv")
    shutil.copy(DATA.universe, work / "universe.bed")
    return work


# -- 2. what pandas reads as missing is missing, and said so ------------------------------------------------------
@pytest.mark.parametrize("marker", ["NA", "None", "null", "N/A", "nan", "NaN", "<NA>", "NULL"])
def test_missing_markers_are_missing_with_one_warning_naming_the_sets(tmp_path, marker):
    values = ["BEAF-32", marker, "CTCF", "CTCF", "CP190", "CP190", marker, "Su(Hw)"]
    path = metadata_with(tmp_path, target=values)
    with pytest.warns(bs.BEDSpaceWarning) as record:
        adata = tokenized(path)
    names = DATA.files[1].name, DATA.files[6].name
    one_warning(record, str(path), f"'target' is {marker!r} for 2 set(s)", *names, "Leave a cell empty")
    assert adata.obs["target"].isna().tolist() == [v == marker for v in values]


@pytest.mark.parametrize("text", ["none", "na", "N.A.", "NA_1", "not applicable", "Null value"])
def test_text_near_a_missing_marker_is_a_label(tmp_path, text):
    values = [text, "BEAF-32"] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        adata = tokenized(metadata_with(tmp_path, target=values))
        assert f"target={text}" in trained_labels(adata, "target")
    assert adata.obs["target"].astype(str).tolist() == values


def test_empty_and_blank_cells_are_missing_and_training_names_every_unlabelled_set(tmp_path):
    values = ["", "BEAF-32", "  ", "CTCF", "NA", "CP190", "CP190", "Su(Hw)"]
    with pytest.warns(bs.BEDSpaceWarning) as record:  # only the marker is news when reading
        adata = tokenized(metadata_with(tmp_path, target=values))
    one_warning(record, "'target' is 'NA' for 1 set(s)")
    assert adata.obs["target"].isna().tolist() == [True, False, True, False, True, False, False, False]
    with pytest.warns(bs.BEDSpaceWarning) as record:
        bs.tl.train(adata, labels="target", dim=4, epochs=1, n_threads=1)
    unlabelled = [DATA.files[i].name for i in (0, 2, 4)]
    one_warning(record, "3 set(s) have no value in ['target']", *unlabelled)
    assert adata.obs["bedspace_in_training"].sum() == 5


def test_preprocess_report_counts_the_training_lines_written(cli, tmp_path):
    work = command_line_folder(tmp_path, target=["BEAF-32", "NA", "CTCF", "CTCF", "", "CP190", "CP190", "Su(Hw)"])
    result = cli(
        "preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target", "-o", "pre.txt", cwd=work
    )  # fmt: skip
    assert len((work / "pre.txt").read_text().splitlines()) == 6
    assert "(6 training lines of 8 sets, labels ['target']; 2 set(s) without a label or a region left out)" in (
        result.stderr
    )
    warned = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warned) == 2, result.stderr  # the cell read as missing, then the sets left out, each named
    assert "'target' is 'NA' for 1 set(s)" in warned[0] and DATA.files[1].name in warned[0]
    assert "2 set(s) have no value" in warned[1] and DATA.files[4].name in warned[1]


# -- 3. a label field that cannot be calibrated never costs the training -------------------------------------------
@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """16 sets, two halves of each bundled set, as files: target 4 × 4, cell_type 2 × 8, sample one per set."""
    folder = tmp_path_factory.mktemp("halves")
    (folder / "beds").mkdir()
    table = pd.read_csv(DATA.metadata, dtype=str).set_index("file_name")
    rows = []
    for path in DATA.files:
        bed = bs.io.read_bed(path).iloc[:, :3]
        for half in (0, 1):
            name = f"{path.name.split('.')[0]}_{half}.bed"
            bed.iloc[half::2].to_csv(folder / "beds" / name, sep="\t", header=False, index=False)
            rows.append({"file_name": name, **table.loc[path.name, ["target", "cell_type"]], "sample": name})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    shutil.copy(DATA.universe, folder / "universe.bed")
    return folder


def tokenized_halves(halves) -> ad.AnnData:
    return bs.pp.tokenize(halves / "beds", halves / "universe.bed", metadata=halves / "labels.csv")


def is_calibrated(adata: ad.AnnData) -> bool:
    return bool(adata.uns["bedspace"]["annotator"]["calibrators"])


def test_a_field_with_one_set_per_value_is_found_before_training_and_left_uncalibrated(halves, monkeypatch):
    adata = tokenized_halves(halves)
    trainings = []

    def training_after_the_warning(*args, **kwargs):
        trainings.append([str(w.message) for w in record])
        return real(*args, **kwargs)

    real = native.train
    monkeypatch.setattr(native, "train", training_after_the_warning)
    with pytest.warns(bs.BEDSpaceWarning) as record:
        bs.tl.train(adata, labels=["target", "sample"], dim=8, epochs=2, n_threads=1)
    one_warning(record, "label field(s) ['sample']", "cannot be calibrated", "calibrate=False", "--no-calibrate")
    assert len(trainings) == 1 and "['sample']" in trainings[0][0]  # said before the training ran
    assert "bedspace" in adata.varm and not is_calibrated(adata)
    table = bs.tl.search(adata, adata.obs_names[3], search_type="r2l")
    assert "probability" not in table.columns and set(table["field"]) == {"target", "sample"}


def test_a_field_with_one_shared_value_is_calibrated(halves):
    adata = tokenized_halves(halves)
    pair = adata.obs["sample"].astype(str).to_numpy()
    pair[1] = pair[0]
    adata.obs["pair"] = pd.Categorical(pair)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        bs.tl.train(adata, labels=["target", "pair"], dim=8, epochs=2, n_threads=1)
    assert is_calibrated(adata)


def test_calibrate_false_needs_no_warning_and_calibrate_names_the_field(halves):
    adata = tokenized_halves(halves)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        bs.tl.train(adata, labels=["target", "sample"], dim=8, epochs=2, n_threads=1, calibrate=False)
    kept = adata.uns["bedspace"]["annotator"]
    with pytest.raises(ValueError, match=r"label field\(s\) \['sample'\]: no value is carried by two labelled sets"):
        bs.tl.calibrate(adata)
    assert adata.uns["bedspace"]["annotator"] is kept and not is_calibrated(adata)


def test_command_line_trains_despite_a_field_it_cannot_calibrate(cli, halves, tmp_path):
    for name in ("beds", "labels.csv", "universe.bed"):
        (shutil.copytree if name == "beds" else shutil.copy)(halves / name, tmp_path / name)
    cli("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target,sample", "-o", "pre.txt",
        cwd=tmp_path)  # fmt: skip
    # one thread: the engine's serial kernel compiles in a third of the parallel one's time, a process apart
    result = cli("train", "-i", "pre.txt", "-o", "model", "--dim", "8", "--epochs", "2", "--threads", "1", cwd=tmp_path)
    warned = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "['sample']" in warned[0] and "--no-calibrate" in warned[0], result.stderr
    assert "model written to model" in result.stderr
    model = bs.BEDSpaceModel.load(tmp_path / "model")
    assert model.annotator is not None and not model.annotator.is_calibrated
    quiet = cli("train", "-i", "pre.txt", "-o", "model2", "--dim", "8", "--epochs", "2", "--threads", "1",
                "--no-calibrate", cwd=tmp_path)  # fmt: skip
    assert "warning" not in quiet.stderr, quiet.stderr
    assert not bs.BEDSpaceModel.load(tmp_path / "model2").annotator.is_calibrated
    assert "--no-calibrate" in cli("train", "--help", cwd=tmp_path).stdout


# -- 4. an annotator of other sets or labels never answers silently ----------------------------------------------
@pytest.fixture(scope="module")
def trained(halves):
    adata = tokenized_halves(halves)
    bs.tl.train(adata, labels=LABELS, dim=8, epochs=2, n_threads=1)
    assert is_calibrated(adata)
    return adata


QUERY = "CTCF_Kc_Bushey_2009_0.bed"


def relabelled(adata: ad.AnnData, names, value: str) -> None:
    """Give the sets ``names`` the target ``value``, in place (a column of .obs replaced, .obs kept)."""
    target = adata.obs["target"].astype(str).to_numpy()
    target[adata.obs_names.get_indexer(names)] = value
    adata.obs["target"] = pd.Categorical(target)


def refitted(adata: ad.AnnData) -> pd.DataFrame:
    """The r2l answer of an annotator fitted on ``adata`` as it is now."""
    fresh = bs.tl.calibrate(adata, copy=True)
    return bs.tl.search(fresh, QUERY, search_type="r2l")


MOVED = ["BEAF_Kc_Bushey_2009_0.bed", "BEAF_Kc_Bushey_2009_1.bed"]


def test_relabelled_in_place_is_fitted_again_with_a_warning(trained):
    adata = trained.copy()
    before = bs.tl.search(adata, QUERY, search_type="r2l")  # the model is built and remembered
    relabelled(adata, MOVED, "CTCF")
    expected = refitted(adata)
    with pytest.warns(bs.BEDSpaceWarning) as record:
        after = bs.tl.search(adata, QUERY, search_type="r2l")
    one_warning(record, "'target' of 2 set(s)", f"{MOVED[0]!r}: 'BEAF-32' -> 'CTCF'", "bs.tl.train", "bs.tl.calibrate")
    pd.testing.assert_frame_equal(after, expected)
    assert not after.equals(before)
    with warnings.catch_warnings():  # told once: the new fit is remembered
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        pd.testing.assert_frame_equal(bs.tl.search(adata, QUERY, search_type="r2l"), expected)


def test_relabelled_after_reading_the_h5ad_warns_too(trained, tmp_path):
    adata = trained.copy()
    relabelled(adata, MOVED[:1], "Su(Hw)")
    adata.write_h5ad(tmp_path / "relabelled.h5ad")
    read = ad.read_h5ad(tmp_path / "relabelled.h5ad")
    with pytest.warns(bs.BEDSpaceWarning) as record:
        table = bs.tl.search(read, "target=CTCF", search_type="l2r", top_k=3)
    one_warning(record, "'target' of 1 set(s)", "'BEAF-32' -> 'Su(Hw)'")
    assert len(table) == 3


def test_a_label_removed_is_a_change_too(trained):
    adata = trained.copy()
    target = adata.obs["target"].copy()
    target.iloc[0] = np.nan
    adata.obs["target"] = target
    with pytest.warns(bs.BEDSpaceWarning) as record:
        bs.tl.search(adata, QUERY, search_type="r2l")
    one_warning(record, "'target' of 1 set(s)", "'BEAF-32' -> no label")


def test_a_label_column_dropped_is_said(trained):
    adata = trained.copy()
    del adata.obs["cell_type"]
    with pytest.warns(bs.BEDSpaceWarning) as record:
        table = bs.tl.search(adata, QUERY, search_type="r2l", field="target")
    one_warning(record, "the label column(s) ['cell_type'] are no longer in .obs", "fitted again")
    assert set(table["field"]) == {"target"}
    with pytest.raises(KeyError, match=r"no metadata column\(s\) \['cell_type'\]"):  # and the field is not made up
        bs.tl.search(adata, QUERY, search_type="r2l")


def test_relabelled_with_values_the_model_never_learned_is_an_error(trained):
    adata = trained.copy()
    adata.obs["target"] = adata.obs["target"].cat.rename_categories(lambda value: value + " (renamed)")
    with pytest.raises(ValueError, match=r"'target' of 16 set\(s\) was changed since bs.tl.train to value\(s\)"):
        bs.tl.search(adata, QUERY, search_type="r2l")
    with pytest.raises(ValueError, match="'BEAF-32 \\(renamed\\)'.*run bs.tl.train again"):
        bs.tl.search(adata, "target=CTCF", search_type="l2r", top_k=3)


@pytest.mark.parametrize("as_copy", [False, True], ids=["view", "copy"])
def test_a_subset_is_fitted_again_with_a_warning(trained, as_copy):
    subset = trained[trained.obs["target"] != "BEAF-32"]
    subset = subset.copy() if as_copy else subset
    expected = refitted(subset.copy())
    with pytest.warns(bs.BEDSpaceWarning) as record:
        table = bs.tl.search(subset, QUERY, search_type="r2l")
    one_warning(record, "fitted on 16 sets and this AnnData has 12 (a subset?)", "bs.tl.calibrate(adata)")
    pd.testing.assert_frame_equal(table, expected)
    assert not table.equals(bs.tl.search(trained, QUERY, search_type="r2l"))  # not the whole collection's answer


def test_reordered_sets_answer_as_before_without_a_warning(trained):
    queries = {"r2l": QUERY, "l2r": "target=CTCF"}
    before = {kind: bs.tl.search(trained, q, search_type=kind, top_k=16) for kind, q in queries.items()}
    reordered = trained[np.arange(trained.n_obs)[::-1]].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        after = {kind: bs.tl.search(reordered, q, search_type=kind, top_k=16) for kind, q in queries.items()}
    pd.testing.assert_frame_equal(after["r2l"], before["r2l"], check_exact=False, atol=1e-9)
    by_name = before["l2r"].set_index("name")["score"]
    np.testing.assert_allclose(after["l2r"].set_index("name")["score"].loc[by_name.index], by_name, atol=1e-9)


def test_calibrate_keeps_the_new_fit_and_says_nothing(trained):
    adata = trained.copy()
    relabelled(adata, MOVED, "CTCF")
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        bs.tl.calibrate(adata)
        table = bs.tl.search(adata.copy(), QUERY, search_type="r2l")  # a new AnnData: the kept annotator, bound
    pd.testing.assert_frame_equal(table, refitted(adata))
