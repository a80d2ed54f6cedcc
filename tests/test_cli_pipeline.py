"""The six commands of the published command line, run as written, on real data (the bundled chr21–22 slice).

The pipeline (preprocess, train, distances) and the help and error-output checks run in real processes; the
searches and refusals run in this process (the ``cli`` fixture), which keeps the module fast.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs


def bedspace(*args, cwd=None, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "bedspace", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def hg19_folder(hg19_slice, tmp_path_factory):
    """Twelve real hg19 sets (4 per collection, chr21–22) in a folder with their metadata; one DNase blood file held
    back."""
    metadata = pd.read_csv(hg19_slice.metadata)
    held_back = metadata[(metadata["assay"] == "DNase-seq") & (metadata["organ"] == "blood")]["file_name"].iloc[0]
    chosen = metadata[metadata["file_name"] != held_back].groupby("collection").head(4)
    folder = tmp_path_factory.mktemp("hg19_subset")
    (folder / "beds").mkdir()
    for name in chosen["file_name"]:
        shutil.copy(hg19_slice.beds / name, folder / "beds" / name)
    chosen.to_csv(folder / "labels.csv", index=False)
    return folder, hg19_slice.beds / held_back


@pytest.fixture(scope="module")
def pipeline(hg19_slice, hg19_folder, tmp_path_factory):
    """preprocess → train → distances, exactly as cli.md writes them."""
    folder, _ = hg19_folder
    work = tmp_path_factory.mktemp("run")
    universe = hg19_slice.universe
    bedspace("preprocess", "--input", folder / "beds", "--metadata", folder / "labels.csv", "--universe", universe,
             "--labels", "assay,organ", "--output", "preprocessed.txt", cwd=work)  # fmt: skip
    bedspace("train", "--input", "preprocessed.txt", "--output", "model/", "--dim", "32", "--epochs", "20",
             "--lr", "0.05", "--threads", "1", cwd=work)  # fmt: skip
    bedspace("distances", "--input", "model/", "--metadata", folder / "labels.csv", "--universe", universe,
             "--output", "distances.pkl", cwd=work)  # fmt: skip
    return work


def test_preprocess_output_is_starspace_input(pipeline, hg19_folder):
    lines = (pipeline / "preprocessed.txt").read_text().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 12
    for line in lines[:-1]:
        tokens = line.split(" ")
        assert all(tokens) and not any(":" in t for t in tokens)
        assert tokens[-2].startswith("__label__assay=") and tokens[-1].startswith("__label__organ=")
    assert (pipeline / "preprocessed.txt.bedspace.h5ad").exists()


def test_train_numbers_are_numbers_and_model_is_a_folder(pipeline):
    manifest = json.loads((pipeline / "model" / "model.json").read_text())
    assert manifest["dim"] == 32 and manifest["params"]["epochs"] == 20 and manifest["params"]["lr"] == 0.05
    assert manifest["params"]["backend"] == "native"


def test_train_refuses_to_continue_an_old_model(cli, pipeline):
    before = (pipeline / "model" / "model.json").read_text()
    result = cli(
        "train", "--input", "preprocessed.txt", "--output", "model/", "--epochs", "2", cwd=pipeline, check=False
    )
    assert result.returncode == 1
    assert "exists; pass --overwrite" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (pipeline / "model" / "model.json").read_text() == before
    cli("train", "--input", "preprocessed.txt", "--output", "model2/", "--epochs", "2", "--dim", "8", "--threads",
        "1", cwd=pipeline)  # fmt: skip
    cli(
        "train",
        "--input",
        "preprocessed.txt",
        "--output",
        "model2/",
        "--epochs",
        "3",
        "--dim",
        "8",
        "--threads",
        "1",
        "--overwrite",
        cwd=pipeline,
    )
    assert json.loads((pipeline / "model2" / "model.json").read_text())["params"]["epochs"] == 3


def test_distances_file_is_a_safe_h5ad(pipeline):
    path = pipeline / "distances.pkl"
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    import anndata as ad

    adata = ad.read_h5ad(path)
    assert adata.n_obs == 12
    assert "bedspace_label_similarity" in adata.obsm and "bedspace_neighbors_connectivities" in adata.obsp


def test_distances_adds_sets_the_model_has_not_seen(cli, pipeline, hg19_slice, hg19_folder):
    folder, held_back = hg19_folder
    labels = pd.read_csv(folder / "labels.csv")
    extra = pd.read_csv(hg19_slice.metadata).query("file_name == @held_back.name")
    pd.concat([labels, extra]).to_csv(pipeline / "labels_plus.csv", index=False)
    args = ["distances", "--input", "model/", "--metadata", "labels_plus.csv", "--universe", hg19_slice.universe,
            "--output", "plus.h5ad"]  # fmt: skip
    result = cli(*args, cwd=pipeline, check=False)
    assert result.returncode == 1 and "not in the model (give their folder with --beds)" in result.stderr
    cli(*args, "--beds", hg19_slice.beds, cwd=pipeline)
    import anndata as ad

    adata = ad.read_h5ad(pipeline / "plus.h5ad")
    assert adata.n_obs == 13 and held_back.name in adata.obs_names
    assert adata.obsm["X_bedspace"][adata.obs_names.get_loc(held_back.name)].any()
    out = cli(
        "search", "-t", "l2r", "-d", "plus.h5ad", "-q", "organ=blood", "-n", "13", "--format", "json", cwd=pipeline
    )
    assert held_back.name in [h["name"] for h in json.loads(out.stdout)]
    # every search type is answered from that file, r2l of a new BED file too
    out = cli("search", "-t", "r2l", "-d", "plus.h5ad", "-q", held_back, "--format", "json", cwd=pipeline)
    assert {h["field"] for h in json.loads(out.stdout)} == {"assay", "organ"}
    out = cli("search", "-t", "r2r", "-d", "plus.h5ad", "-q", held_back.name, "--format", "json", cwd=pipeline)
    assert held_back.name not in [h["name"] for h in json.loads(out.stdout)]


def test_search_r2l_with_a_file_never_seen(cli, pipeline, hg19_folder):
    _, held_back = hg19_folder
    out = cli(
        "search", "-t", "r2l", "-d", "distances.pkl", "-q", held_back, "-n", "10", "--format", "tsv", cwd=pipeline
    ).stdout
    table = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    # the default annotator: per field, labels ranked by calibrated probability, with the classifier score and the
    # domain check
    assert list(table.columns) == ["field", "rank", "name", "value", "probability", "score", "in_domain", "evidence"]
    assert len(table) == 6 and table["in_domain"].all()  # every label of the subset
    assert table.loc[table["field"] == "assay", "value"].iloc[0] == "DNase-seq"
    assert table.loc[table["field"] == "organ", "value"].iloc[0] == "blood"
    assert np.allclose(table.groupby("field")["probability"].sum(), 1.0, atol=1e-3)
    # the label vectors, StarSpace's way, on request; abstention below a probability
    out = cli(
        "search", "-t", "r2l", "-d", "distances.pkl", "-q", held_back, "--method", "embedding", "--format", "tsv",
        cwd=pipeline,
    ).stdout  # fmt: skip
    assert list(pd.read_csv(pd.io.common.StringIO(out), sep="\t").columns[:3]) == ["rank", "name", "score"]
    out = cli(
        "search", "-t", "r2l", "-d", "distances.pkl", "-q", held_back, "--min-probability", "0.3", "--format", "tsv",
        cwd=pipeline,
    ).stdout  # fmt: skip
    confident = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert len(confident) < len(table) and (confident["probability"] >= 0.3).all()
    result = cli("search", "-t", "r2r", "-d", "distances.pkl", "-q", held_back, "--min-probability", "0.5",
                 cwd=pipeline, check=False)  # fmt: skip
    assert result.returncode == 1 and "-t r2l only" in result.stderr


def test_search_l2r_and_r2r(cli, pipeline, hg19_folder):
    folder, held_back = hg19_folder
    out = cli(
        "search", "-t", "l2r", "-d", "distances.pkl", "-q", "ATAC-seq", "-n", "4", "--format", "json", cwd=pipeline
    ).stdout
    hits = json.loads(out)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    # the default ranks sets by their annotation from the other sets: a GM12878 TF ChIP set may look like blood ATAC-seq
    assert sum(h["assay"] == "ATAC-seq" for h in hits) >= 3
    out = cli(
        "search", "-t", "l2r", "-d", "distances.pkl", "-q", "ATAC-seq", "-n", "4", "--method", "embedding",
        "--format", "json", cwd=pipeline,
    ).stdout  # fmt: skip
    assert all(h["assay"] == "ATAC-seq" for h in json.loads(out))
    table = cli("search", "-t", "r2r", "-d", "distances.pkl", "-q", held_back, "-n", "3", cwd=pipeline).stdout
    lines = table.strip().splitlines()
    assert lines[0].split()[:5] == ["rank", "name", "score", "cosine", "shared_labels"] and len(lines) == 4
    assert "DNase-seq" in lines[1]
    out = cli(
        "search", "-t", "r2r", "-d", "distances.pkl", "-q", held_back, "-n", "3", "--method", "embedding",
        "--format", "tsv", cwd=pipeline,
    ).stdout  # fmt: skip
    by_vectors = pd.read_csv(pd.io.common.StringIO(out), sep="\t")
    assert list(by_vectors.columns) == ["rank", "name", "score", "assay", "organ"]
    # a set of the collection asked for by name is not its own hit; its file is compared with every set
    own = sorted((folder / "beds").iterdir())[0]
    out = cli(
        "search", "-t", "r2r", "-d", "distances.pkl", "-q", own.name, "-n", "20", "--format", "json", cwd=pipeline
    ).stdout
    assert own.name not in [h["name"] for h in json.loads(out)]
    out = cli(
        "search", "-t", "r2r", "-d", "distances.pkl", "-q", own, "-n", "20", "--format", "json", cwd=pipeline
    ).stdout
    assert json.loads(out)[0]["name"] == own.name


def test_train_checks_the_training_file_against_its_companion(cli, pipeline):
    edited = pipeline / "edited.txt"
    shutil.copy(pipeline / "preprocessed.txt", edited)
    shutil.copy(pipeline / "preprocessed.txt.bedspace.h5ad", pipeline / "edited.txt.bedspace.h5ad")
    with open(edited, "a") as out:
        out.write("chr1_0_5000 __label__organ=moon\n")
    result = cli("train", "-i", "edited.txt", "-o", "m_edited/", "--epochs", "1", cwd=pipeline, check=False)
    assert result.returncode == 1 and not (pipeline / "m_edited").exists()
    assert "edited.txt is not the training file that edited.txt.bedspace.h5ad describes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_distances_refuses_to_overwrite_its_inputs(cli, pipeline, hg19_slice, hg19_folder, tmp_path):
    folder, _ = hg19_folder
    shutil.copy(folder / "labels.csv", pipeline / "meta.csv")
    before = (pipeline / "meta.csv").read_bytes()
    result = cli("distances", "-i", "model/", "-m", "meta.csv", "-u", hg19_slice.universe,
                      "-o", "meta.csv", cwd=pipeline, check=False)  # fmt: skip
    assert result.returncode == 1 and "same file as --metadata" in result.stderr
    assert (pipeline / "meta.csv").read_bytes() == before
    other = tmp_path / "chr21_only.bed"  # another universe: the model's regions on chr21 alone
    universe = pd.read_csv(hg19_slice.universe, sep="\t", header=None)
    universe[universe[0] == "chr21"].to_csv(other, sep="\t", header=False, index=False)
    result = cli("distances", "-i", "model/", "-m", "meta.csv", "-u", other,
                      "-o", "d2.h5ad", cwd=pipeline, check=False)  # fmt: skip
    assert result.returncode == 1 and "is not on the universe" in result.stderr


def test_every_command_has_help_with_examples():
    for command in ("preprocess", "train", "distances", "search", "demo"):
        assert "examples:" in bedspace(command, "--help").stdout
    assert bedspace("--version").stdout.strip() == f"bedspace {bs.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "-t", "l2r", "-d", "distances.pkl", "-q", "moon"], "unknown label 'moon'"),
        (["search", "-t", "l2r", "-d", "missing.pkl", "-q", "x"], "distances file not found"),
        (
            ["search", "-t", "r2l", "-d", "distances.pkl", "-q", "nowhere.bed"],
            "neither a BED file nor a region set of the collection",
        ),
        (["search", "-t", "r2x", "-d", "distances.pkl", "-q", "x"], "invalid choice: 'r2x'"),
        (["train", "--input", "preprocessed.txt", "--output", "m/", "--dim", "ten"], "invalid int value: 'ten'"),
        (["train", "--input", "nothing.txt", "--output", "m/"], "training file not found"),
        (
            ["train", "--input", "preprocessed.txt", "--output", "m/", "--path-to-starspace", "/no/starspace"],
            "StarSpace binary not found: /no/starspace",
        ),
        (
            [
                "preprocess",
                "--input",
                "nofolder",
                "--metadata",
                "x.csv",
                "--universe",
                "u.bed",
                "--labels",
                "a",
                "--output",
                "o.txt",
            ],
            "region sets not found",
        ),
    ],
)
def test_user_mistakes_are_one_line(cli, pipeline, args, message):
    result = cli(*args, cwd=pipeline, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_pickle_is_never_loaded(cli, pipeline):
    (pipeline / "evil.pkl").write_bytes(pickle.dumps({"a": 1}))
    result = cli("search", "-t", "l2r", "-d", "evil.pkl", "-q", "x", cwd=pipeline, check=False)
    assert result.returncode == 1 and "not a distances file written by bedspace" in result.stderr


def test_malformed_bed_and_unknown_label_column(tmp_path, hg19_slice):
    (tmp_path / "beds").mkdir()
    (tmp_path / "beds" / "a.bed").write_text("chr1\t100\t200\nchr1\t300\n")
    (tmp_path / "labels.csv").write_text("file_name,kind\na.bed,x\n")
    args = ["preprocess", "--input", tmp_path / "beds", "--metadata", tmp_path / "labels.csv", "--universe",
            hg19_slice.universe, "--labels", "kind", "--output", tmp_path / "p.txt"]  # fmt: skip
    result = bedspace(*args, check=False)
    assert result.returncode == 1 and "a.bed, line 2: fewer than 3" in result.stderr
    (tmp_path / "beds" / "a.bed").write_text("chr1\t100\t200\n")
    args[args.index("kind")] = "tissue"
    result = bedspace(*args, check=False)
    assert result.returncode == 1 and "no column(s) ['tissue']" in result.stderr
    assert bedspace("--debug", *args, check=False).stderr.count("Traceback") == 1


@pytest.mark.skipif(
    not os.environ.get("BEDSPACE_STARSPACE"),
    reason="the real StarSpace binary cannot be installed from a package registry; set BEDSPACE_STARSPACE to run this",
)
def test_train_with_the_real_binary(pipeline):
    bedspace("train", "--path-to-starspace", os.environ["BEDSPACE_STARSPACE"], "--input", "preprocessed.txt",
             "--output", "model_ss/", "--dim", "16", "--epochs", "3", cwd=pipeline)  # fmt: skip
    model = bs.BEDSpaceModel.load(pipeline / "model_ss")
    assert model.params["backend"] == "starspace" and model.dim == 16
    binary = Path(os.environ["BEDSPACE_STARSPACE"])
    binary = binary / "starspace" if binary.is_dir() else binary
    direct = subprocess.run([binary, "train", "-trainFile", "preprocessed.txt", "-model", "direct", "-trainMode", "0",
                             "-dim", "8", "-epoch", "1", "-thread", "2"], cwd=pipeline, capture_output=True, text=True)  # fmt: skip
    assert direct.returncode == 0 and (pipeline / "direct.tsv").exists()
