from __future__ import annotations

import subprocess
import sys

import bedspace as bs


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "bedspace", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_demo_runs_on_bundled_data(tmp_path):
    figure = tmp_path / "demo.png"
    result = run("demo", "--figure", figure)
    assert result.returncode == 0, result.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for step in (
        "3. cosine similarity",
        "4. the three searches",
        "r2l: labels of",
        "5. held-out evaluation",
        "overlap",
    ):
        assert step in result.stdout
    assert "tokenized 8 region sets" in result.stdout
    assert "SuHw_Mbn2_Bushey_2009.bed.gz" in result.stdout
    assert "trained a 50-dimensional joint embedding" in result.stdout
    assert "target=Su(Hw)" in result.stdout
    assert "Traceback" not in result.stderr
    noise = [line for line in result.stderr.splitlines() if "Warning" in line or "warn(" in line]
    assert not noise, noise  # only bedspace's own words


def test_demo_on_a_folder(hg19, tmp_path):
    """The demo on a user's folder: 30 real hg19 sets (10 of each kind), their metadata and a universe."""
    import shutil

    import pandas as pd

    metadata = pd.read_csv(hg19.metadata).groupby("collection").head(10)
    (tmp_path / "beds").mkdir()
    for name in metadata["file_name"]:
        shutil.copy(hg19.beds / name, tmp_path / "beds" / name)
    metadata.to_csv(tmp_path / "labels.csv", index=False)
    result = run(
        "demo",
        "--data",
        str(tmp_path / "beds"),
        "--metadata",
        str(tmp_path / "labels.csv"),
        "--universe",
        str(hg19.universes["tiles_5kb"]),
        "--labels",
        "organ,assay",
        "--epochs",
        "5",
        "--figure",
        tmp_path / "hg19.png",
    )
    assert result.returncode == 0, result.stderr
    assert "tokenized 30 region sets" in result.stdout
    assert "5. held-out evaluation" in result.stdout and "assay=DNase-seq" in result.stdout


def test_version_and_help():
    assert run("--version").stdout.strip() == f"bedspace {bs.__version__}"
    assert "examples:" in run("demo", "--help").stdout


def test_user_error_is_one_line(tmp_path):
    result = run("demo", "--data", str(tmp_path / "nope"), "--metadata", "m.csv", "--universe", "u.bed")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"bedspace demo: error: region sets not found: {tmp_path / 'nope'}"]
    debug = run("--debug", "demo", "--data", str(tmp_path / "nope"), "--metadata", "m.csv", "--universe", "u.bed")
    assert "Traceback" in debug.stderr


def test_malformed_bed_from_cli(tmp_path, hg19):
    (tmp_path / "a.bed").write_text("chr1\t10\t5\n")
    (tmp_path / "m.csv").write_text("file_name\na.bed\n")
    result = run(
        "demo",
        "--data",
        str(tmp_path),
        "--metadata",
        str(tmp_path / "m.csv"),
        "--universe",
        str(hg19.universe),
    )
    assert result.returncode == 1
    assert "a.bed, line 1: end (column 3) is smaller than start" in result.stderr
    assert "Traceback" not in result.stderr


def test_search_answers_from_a_model_folder_as_from_the_distances_file(tmp_path):
    """``search -d`` takes the folder ``train`` wrote: the same answers as the distances file, in a real process."""
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    bs.tl.train(adata, labels=["target", "cell_type"], dim=8, epochs=2, n_threads=1)
    model = bs.BEDSpaceModel.from_anndata(adata)
    model.save(tmp_path / "model")
    model.to_anndata().write_h5ad(tmp_path / "distances.h5ad")
    query = data.beds / "CTCF_Kc_Bushey_2009.bed.gz"
    for kind, extra in (("r2l", ()), ("r2r", ("--method", "embedding")), ("l2r", ())):
        target = "cell_type=Kc" if kind == "l2r" else query
        from_folder = run("search", "-t", kind, "-d", tmp_path / "model", "-q", target, "--format", "tsv", *extra)
        from_file = run(
            "search", "-t", kind, "-d", tmp_path / "distances.h5ad", "-q", target, "--format", "tsv", *extra
        )
        assert from_folder.returncode == 0, from_folder.stderr
        if kind == "r2r":  # the folder keeps region vectors as float16: the same sets, in the same order
            names = [[line.split("\t")[1] for line in r.stdout.splitlines()[1:]] for r in (from_folder, from_file)]
            assert names[0] == names[1]
        else:
            assert from_folder.stdout == from_file.stdout, kind
