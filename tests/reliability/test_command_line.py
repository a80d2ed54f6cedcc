"""The command line under bad options, damaged inputs, name clashes and concurrent runs (offline, bundled data).

Every case asserts one line on stderr, no traceback and a non-zero exit — or the correct result.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import unicodedata

import pandas as pd
import pytest

import bedspace as bs


def one_line_error(result, *fragments, code=None):
    assert result.returncode != 0 if code is None else result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def work(cli, tmp_path_factory):
    """preprocess → train → distances on the bundled insulator sets, as a user runs them."""
    data = bs.datasets.insulators()
    work = tmp_path_factory.mktemp("cli")
    shutil.copytree(data.beds, work / "beds", ignore=shutil.ignore_patterns("*.csv", "*.md"))
    shutil.copy(data.metadata, work / "labels.csv")
    shutil.copy(data.universe, work / "universe.bed")
    cli("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target,cell_type",
             "-o", "pre.txt", cwd=work)  # fmt: skip
    cli("train", "-i", "pre.txt", "-o", "model", "--dim", "8", "--epochs", "3", "--threads", "1", cwd=work)
    result = cli("distances", "-i", "model", "-m", "labels.csv", "-u", "universe.bed", "-o", "d.h5ad", cwd=work)
    assert "Warning" not in result.stderr.replace("bedspace distances: warning:", ""), result.stderr
    return work


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "inf", "must be a finite number, got 'inf'"),
        ("--lr", "nan", "must be a finite number, got 'nan'"),
        ("--threads", "0", "must be >= 1, got 0"),
        ("--dim", "0", "must be >= 1, got 0"),
        ("--epochs", "-3", "must be >= 1, got -3"),
        ("--dim", "1e3", "invalid int value: '1e3'"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(cli, work, option, value, message):
    one_line_error(cli("train", "-i", "pre.txt", "-o", "m_bad", option, value, cwd=work, check=False), message)
    assert not (work / "m_bad").exists()


def test_dropout_out_of_range_names_the_option(cli, work):
    result = cli("train", "-i", "pre.txt", "-o", "m_bad", "--dropout", "1.5", cwd=work, check=False)
    one_line_error(result, "dropout must be in [0, 1), got 1.5")


def test_output_dot_with_overwrite_is_refused(cli, work):
    before = sorted(p.name for p in work.iterdir())
    one_line_error(cli("train", "-i", "pre.txt", "-o", ".", "--overwrite", cwd=work, check=False), "train")
    assert sorted(p.name for p in work.iterdir()) == before


def test_overwrite_never_deletes_a_folder_that_is_not_a_model(cli, work):
    (work / "results").mkdir(exist_ok=True)
    (work / "results" / "figure.png").write_bytes(b"precious")
    result = cli("train", "-i", "pre.txt", "-o", "results", "--overwrite", "--epochs", "1", cwd=work, check=False)
    one_line_error(result, "results")
    assert "training" not in result.stderr  # refused before the training, not after it
    assert (work / "results" / "figure.png").read_bytes() == b"precious"


def test_two_trainings_into_the_same_new_folder(work):
    """One wins; the other is told the folder exists — never two 'model written' with one model lost."""
    args = [sys.executable, "-m", "bedspace", "train", "-i", "pre.txt", "-o", "race", "--epochs", "2", "--dim", "4"]
    runs = [subprocess.Popen(args, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert "exists" in loser and "Traceback" not in loser
    bs.BEDSpaceModel.load(work / "race")


def test_a_relative_starspace_path_is_found(cli, work):
    stand_in = work / "fake_starspace"
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        "flags = dict(zip(sys.argv[2::2], sys.argv[3::2]))\n"
        "symbols = {t: 1 for line in pathlib.Path(flags['-trainFile']).read_text().split() for t in [line]}\n"
        "dim = int(flags['-dim'])\n"
        "print(' Epoch 0 Train error : 0.1 ')\n"
        "with open(flags['-model'] + '.tsv', 'w') as out:\n"
        "    for i, s in enumerate(symbols):\n"
        "        out.write(s + '\\t' + '\\t'.join(str(0.01 * (i + k + 1)) for k in range(dim)) + '\\n')\n"
    )
    stand_in.chmod(0o755)
    cli("train", "-i", "pre.txt", "-o", "m_ss", "--dim", "4", "--epochs", "1", "--path-to-starspace",
             "./fake_starspace", cwd=work)  # fmt: skip
    assert bs.BEDSpaceModel.load(work / "m_ss").params["backend"] == "starspace"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "not a bedspace model folder (no model.json)"),
        (lambda p: p.write_text("file_name\na.bed\n"), "is not a distances file written by bedspace"),
        (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "damaged or incomplete distances file"),
    ],
    ids=["a folder", "a text file", "a truncated h5ad"],
)
def test_a_bad_distances_file_is_named(cli, work, make, message):
    target = work / f"bad_{message[:5].replace(' ', '_')}.h5ad"
    make(target)
    one_line_error(cli("search", "-t", "l2r", "-d", target, "-q", "CTCF", cwd=work, check=False), message)


def test_a_truncated_distances_file_names_itself(cli, work):
    data = (work / "d.h5ad").read_bytes()
    (work / "cut.h5ad").write_bytes(data[: len(data) // 3])
    one_line_error(cli("search", "-t", "l2r", "-d", "cut.h5ad", "-q", "CTCF", cwd=work, check=False), "cut.h5ad")


def test_a_file_and_a_stored_set_with_the_same_name(cli, work, tmp_path):
    """The path means the file: a copy of another set, named like a stored one, finds that other set first."""
    beds = sorted((work / "beds").iterdir())
    stored, other = beds[0].name, beds[-1]
    shutil.copy(work / "d.h5ad", tmp_path / "d.h5ad")
    shutil.copy(other, tmp_path / stored)
    out = cli("search", "-t", "r2r", "-d", "d.h5ad", "-q", stored, "--format", "tsv", cwd=tmp_path).stdout
    hits = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert hits["name"].iloc[0] == other.name and hits["score"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    out = cli("search", "-t", "r2r", "-d", "d.h5ad", "-q", stored, "--format", "tsv", cwd=work).stdout
    assert stored not in pd.read_csv(pd.io.common.StringIO(out), sep="\t")["name"].tolist()  # by name: not its own hit


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "nothing to rank"), ("chrX_other_genome\t100\t2000\n", "nothing to rank")],
    ids=["empty file", "another genome"],
)
def test_a_query_with_nothing_to_rank(cli, work, content, message):
    (work / "q.bed").write_text(content)
    result = cli("search", "-t", "r2l", "-d", "d.h5ad", "-q", "q.bed", cwd=work, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not result.stdout.strip()  # no list of 0.0 scores


def test_distances_refuses_its_own_inputs_and_another_universe(cli, work):
    shutil.copy(work / "labels.csv", work / "meta.csv")
    result = cli("distances", "-i", "model", "-m", "meta.csv", "-u", "universe.bed", "-o", "meta.csv", cwd=work,
                      check=False)  # fmt: skip
    one_line_error(result, "same file as --metadata")
    assert (work / "meta.csv").read_text() == (work / "labels.csv").read_text()
    lines = (work / "universe.bed").read_text().splitlines()
    (work / "shifted.bed").write_text(
        "".join(f"{c}\t{int(s) + 1}\t{e}\n" for c, s, e in (x.split("\t") for x in lines))
    )
    result = cli("distances", "-i", "model", "-m", "labels.csv", "-u", "shifted.bed", "-o", "x.h5ad", cwd=work,
                      check=False)  # fmt: skip
    one_line_error(result, "is not on the universe", "start differs at region 0")


def test_train_refuses_a_training_file_its_companion_does_not_describe(cli, work):
    shutil.copy(work / "pre.txt", work / "crash.txt")
    shutil.copy(work / "pre.txt.bedspace.h5ad", work / "crash.txt.bedspace.h5ad")
    lines = (work / "crash.txt").read_text().splitlines()
    (work / "crash.txt").write_text("\n".join(lines[:-1]) + "\n")  # a newer file beside a stale companion
    result = cli("train", "-i", "crash.txt", "-o", "m_crash", cwd=work, check=False)
    one_line_error(result, "crash.txt is not the training file that crash.txt.bedspace.h5ad describes")


def test_metadata_names_match_across_unicode_normal_forms(tmp_path):
    data = bs.datasets.insulators()
    composed = unicodedata.normalize("NFC", "café_CTCF.bed.gz")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    (tmp_path / "beds").mkdir()
    shutil.copy(data.files[0], tmp_path / "beds" / decomposed)
    shutil.copy(data.files[1], tmp_path / "beds" / "plain.bed.gz")
    (tmp_path / "labels.csv").write_text(f"file_name,kind\n{composed},a\nplain.bed.gz,b\n", encoding="utf-8")
    adata = bs.pp.tokenize(tmp_path / "beds", data.universe, metadata=tmp_path / "labels.csv")
    assert adata.obs["kind"].tolist() == ["a", "b"] or adata.obs["kind"].tolist() == ["b", "a"]
    assert adata.obs.loc["plain.bed.gz", "kind"] == "b"


def test_demo_on_a_collection_with_one_set_per_label(cli, tmp_path):
    data = bs.datasets.insulators()
    (tmp_path / "m.csv").write_text(
        "file_name,sample\n" + "".join(f"{p.name},s{i}\n" for i, p in enumerate(data.files))
    )
    result = cli("demo", "--data", data.beds, "--metadata", tmp_path / "m.csv", "--universe", data.universe,
                      "--labels", "sample", "--epochs", "2", "--figure", tmp_path / "f.png", cwd=tmp_path)  # fmt: skip
    assert "held-out evaluation skipped: every value of 'sample' has one set" in result.stdout
    assert (tmp_path / "f.png").exists()


@pytest.mark.parametrize("inside", ["model/region_vectors.npy", "model/new.h5ad", "model/sub/d.h5ad"])
def test_distances_never_writes_into_the_model_it_reads(cli, work, inside):
    before = {p.name: p.stat().st_mtime_ns for p in (work / "model").iterdir()}
    result = cli(
        "distances", "-i", "model", "-m", "labels.csv", "-u", "universe.bed", "-o", inside, cwd=work, check=False
    )
    one_line_error(result, "is inside --input model: it would change its own input")
    assert {p.name: p.stat().st_mtime_ns for p in (work / "model").iterdir()} == before
    bs.BEDSpaceModel.load(work / "model")  # intact


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_refused_not_the_current_folder(cli, work, query):
    """An unset shell variable (``-q "$QUERY"``) must not annotate every BED file in the working folder."""
    (work / "stray.bed").write_text("chr2L\t100\t200\n")
    for target in ("d.h5ad", "model"):
        result = cli("search", "-t", "r2l", "-d", target, "-q", query, cwd=work, check=False)
        one_line_error(result, "a query is an empty name")
    with pytest.raises(ValueError, match="a query is an empty name"):
        bs.BEDSpaceModel.load(work / "model").search(query, search_type="r2r")


@pytest.mark.parametrize("escape", ["../secret.bed", "{work}/secret.bed", "beds/../../secret.bed"])
def test_distances_never_reads_a_bed_file_outside_its_folder(cli, work, escape):
    """A metadata row naming a file outside ``--beds`` (a relative escape, an absolute path) is refused by name."""
    shutil.copy(work / "beds" / "CTCF_Kc_Bushey_2009.bed.gz", work / "secret.bed")
    labels = pd.read_csv(work / "labels.csv")
    extra = labels.iloc[[0]].assign(file_name=escape.format(work=work))
    pd.concat([labels, extra]).to_csv(work / "labels_escape.csv", index=False)
    result = cli("distances", "-i", "model", "-m", "labels_escape.csv", "-u", "universe.bed", "-o", "esc.h5ad",
                 "--beds", "beds", cwd=work, check=False)  # fmt: skip
    one_line_error(result, "lead outside --beds beds")
    assert not (work / "esc.h5ad").exists()


@pytest.mark.parametrize("output", ["beds/CTCF_Kc_Bushey_2009.bed.gz", "beds/pre.txt"])
def test_preprocess_never_writes_into_its_input_folder(cli, work, output):
    """``-o`` an input BED file (or any file in the input folder) would replace it and drop a companion there."""
    before = {p.name: p.read_bytes() for p in (work / "beds").iterdir()}
    result = cli("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target",
                 "-o", output, cwd=work, check=False)  # fmt: skip
    one_line_error(result, "is inside --input beds: it would change its own input")
    assert {p.name: p.read_bytes() for p in (work / "beds").iterdir()} == before
