from __future__ import annotations

import subprocess
import sys

import anndata as ad
import pandas as pd

import bedspace as bs


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "bedspace", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def start(*args) -> subprocess.Popen:
    """``run`` without waiting: collect it with ``finish``."""
    return subprocess.Popen(
        [sys.executable, "-m", "bedspace", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_demo_runs_on_bundled_data(tmp_path):
    """The main job: real hg19 sets bundled with bedspace, held out and compared; twice, the same words."""
    figure = tmp_path / "demo.png"
    result = run("demo", "--figure", figure)
    assert result.returncode == 0, result.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = result.stdout
    assert "171 hg19 region sets" in out and "tokenized the sets onto the universe" in out
    assert "held out 45 sets (a quarter of each organ)" in out and "trained on the other 126" in out
    assert "probabilities calibrated on the training sets" in out
    table = out[out.index("3. the 45 held-out sets") : out.index("4. the three searches")]
    for row in ("organ      r2l hit@1", "cell_class r2l hit@1", "assay      r2l hit@1", "l2r MAP", "r2r MAP"):
        assert row in table
    assert table.splitlines()[2].split() == ["bedspace", "overlap", "enrichment", "random"]
    for step in ("r2l, a few held-out sets annotated", "in_domain", "l2r, the training sets for organ=", "r2r, the"):
        assert step in out
    assert "5. figure of the similarity of every set to every label" in out
    assert "Traceback" not in result.stderr
    noise = [line for line in result.stderr.splitlines() if "Warning" in line or "warn(" in line]
    assert not noise, noise  # only bedspace's own words
    again = run("demo", "--figure", figure)  # the earlier demo's figure is replaced without asking
    assert again.returncode == 0, again.stderr
    assert again.stdout == out  # one thread, one seed: the same numbers every run


def test_demo_explains_rows_behind_a_baseline(capsys):
    """A row where a baseline beats the default says by how many sets, and why one split is not the verdict."""
    from bedspace.cli._demo import _held_out

    rows = []
    for field in ("organ", "assay"):
        for search, metric in (("r2l", "hit@1"), ("l2r", "MAP"), ("r2r", "MAP")):
            values = {"bedspace": 0.8, "overlap": 0.7, "enrichment": 0.7, "random": 0.1}
            if (field, search) == ("organ", "r2l"):
                values["enrichment"] = 0.8 + 2 / 45
            rows += [(field, search, metric, m, v) for m, v in values.items()]
    table = pd.DataFrame(rows, columns=["field", "search", "metric", "method", "value"])
    test = ad.AnnData(obs=pd.DataFrame({"organ": ["a"] * 45, "assay": ["b"] * 45}, index=[f"s{i}" for i in range(45)]))
    _held_out(table, test, ["organ", "assay"])
    out = capsys.readouterr().out
    assert "organ r2l hit@1: enrichment is right on 2 sets more of 45 (0.022 each)" in out
    assert "assay r2l" not in out.split("chance")[1]


def test_demo_on_a_folder(hg19_slice, tmp_path):
    """The demo on a user's folder: 30 real hg19 sets (10 of each kind, chr21–22), their metadata and a universe."""
    import shutil

    import pandas as pd

    metadata = pd.read_csv(hg19_slice.metadata).groupby("collection").head(10)
    (tmp_path / "beds").mkdir()
    for name in metadata["file_name"]:
        shutil.copy(hg19_slice.beds / name, tmp_path / "beds" / name)
    metadata.to_csv(tmp_path / "labels.csv", index=False)
    result = run(
        "demo",
        "--data",
        str(tmp_path / "beds"),
        "--metadata",
        str(tmp_path / "labels.csv"),
        "--universe",
        str(hg19_slice.universe),
        "--labels",
        "organ,assay",
        "--epochs",
        "5",
        "--figure",
        tmp_path / "hg19.png",
    )
    assert result.returncode == 0, result.stderr
    assert ": 30 region sets, labels organ, assay" in result.stdout
    assert "3. the " in result.stdout and "held-out sets" in result.stdout and "DNase-seq" in result.stdout


def test_version_and_help():
    assert run("--version").stdout.strip() == f"bedspace {bs.__version__}"
    assert "examples:" in run("demo", "--help").stdout


def test_user_error_is_one_line(tmp_path):
    args = ["demo", "--data", str(tmp_path / "nope"), "--metadata", "m.csv", "--universe", "u.bed"]
    plain, with_debug = start(*args), start("--debug", *args)  # both at once
    result, debug = finish(plain), finish(with_debug)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"bedspace demo: error: region sets not found: {tmp_path / 'nope'}"]
    assert "Traceback" in debug.stderr


def test_malformed_bed_from_cli(tmp_path, hg19_slice):
    (tmp_path / "a.bed").write_text("chr1\t10\t5\n")
    (tmp_path / "m.csv").write_text("file_name\na.bed\n")
    result = run(
        "demo",
        "--data",
        str(tmp_path),
        "--metadata",
        str(tmp_path / "m.csv"),
        "--universe",
        str(hg19_slice.universe),
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
    kinds = (("r2l", ()), ("r2r", ("--method", "embedding")), ("l2r", ()))
    # the six processes at once (each mostly starts and imports): as many as the cores run, not one after the other
    started = {}
    for kind, extra in kinds:
        target = "cell_type=Kc" if kind == "l2r" else query
        for source in ("model", "distances.h5ad"):
            started[kind, source] = start(
                "search", "-t", kind, "-d", tmp_path / source, "-q", target, "--format", "tsv", *extra
            )
    done = {key: finish(process) for key, process in started.items()}
    for kind, _ in kinds:
        from_folder, from_file = done[kind, "model"], done[kind, "distances.h5ad"]
        assert from_folder.returncode == 0, from_folder.stderr
        if kind == "r2r":  # the folder keeps region vectors as float16: the same sets, in the same order
            names = [[line.split("\t")[1] for line in r.stdout.splitlines()[1:]] for r in (from_folder, from_file)]
            assert names[0] == names[1]
        else:
            assert from_folder.stdout == from_file.stdout, kind
