"""Ready references: ``bedspace reference encode-hg19 -o ref/`` and ``bs.datasets.encode_hg19_reference()``.

Built from the local copy of the hg19 collection (``$BEDSPACE_DATA_DIR``; a download would fail the test), with
small training options to keep the suite fast (``--epochs 3 --dim 16``); the defaults are checked against the
docs without building. ``benchmarks``-style numbers (build time, per-file r2l time with the defaults) are measured
by hand, not here.
"""

from __future__ import annotations

import inspect
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._params import TrainParams
from bedspace.cli import _reference as cli_reference
from bedspace.cli import build_parser
from bedspace.datasets import _encode
from bedspace.datasets import _reference as reference

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"dim": 16, "epochs": 3}
LABELS = ["organ", "cell_class", "assay"]


@pytest.fixture(scope="module")
def no_download():
    """The download is replaced by the local copy: reaching it is a failure."""

    def refuse(*args, **kwargs):
        raise AssertionError("the reference must be built from the local copy, not downloaded")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_encode, "_download", refuse)
        yield


@pytest.fixture(scope="module")
def ref(hg19, no_download, tmp_path_factory, cli) -> Path:
    """``bedspace reference encode-hg19 -o ref/`` from the local copy (``--data``), small options, one thread."""
    folder = tmp_path_factory.mktemp("reference")
    result = cli(
        "reference", "encode-hg19", "-o", "ref", "--data", hg19.beds.parent, "--epochs", SMALL["epochs"],
        "--dim", SMALL["dim"], "-j", 1, cwd=folder,
    )  # fmt: skip
    assert "tokenized 172 sets onto the consensus universe" in result.stderr
    assert "calibrated the default annotator" in result.stderr
    assert "bedspace search -t r2l -d ref -q my_peaks/" in result.stderr
    return folder / "ref"


@pytest.fixture(scope="module")
def queries(sample_files, tmp_path_factory) -> Path:
    """A folder of a few hg19 BED files: two DNase, two TF ChIP, one blood ATAC."""
    folder = tmp_path_factory.mktemp("my_peaks")
    for path in sample_files:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def cached(hg19, no_download, tmp_path_factory):
    """``bs.datasets.encode_hg19_reference()`` built once into a fresh cache (from ``$BEDSPACE_DATA_DIR``)."""
    builds = []
    real = reference.build_reference

    def counted(*args, **kwargs):
        builds.append(kwargs)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BEDSPACE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(reference, "build_reference", counted)
        model = bs.datasets.encode_hg19_reference(**SMALL, n_jobs=1)
        yield model, builds, mp


# -- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.data
def test_the_reference_is_a_calibrated_model_of_the_collection(ref, hg19, hg19_metadata):
    model = bs.BEDSpaceModel.load(ref)
    assert model.params["labels"] == LABELS
    assert (model.params["dim"], model.params["epochs"], model.params["random_state"]) == (16, 3, 0)
    assert sorted(model.label_table.frame["field"].unique()) == sorted(LABELS)
    assert len(model.universe) == len(bs.io.read_bed(hg19.universe))  # the consensus universe
    assert sorted(model.set_names) == sorted(hg19_metadata["file_name"])
    assert model.annotator is not None and model.annotator.is_calibrated
    assert model.universe.assembly == "hg19"  # hg38 queries are lifted onto it (search's assembly=)


@pytest.mark.data
def test_search_r2l_on_the_reference(ref, queries, hg19_metadata, cli, tmp_path):
    result = cli("search", "-t", "r2l", "-d", ref, "-q", queries, "-n", 2, "--format", "tsv", cwd=tmp_path)
    table = pd.read_csv(io.StringIO(result.stdout), sep="\t")
    files = sorted(p.name for p in queries.iterdir())
    assert sorted(table["query"].unique()) == files
    assert set(table["field"]) == set(LABELS)
    assert table["probability"].between(0, 1).all() and table["probability"].notna().all()
    assert table.groupby(["query", "field"]).size().eq(2).all()
    # the sets are the collection's own: the most probable label of each field is theirs
    truth = hg19_metadata.set_index("file_name")
    best = table[table["rank"] == 1]
    checked = 0
    for row in best.itertuples():
        if pd.notna(truth.loc[row.query, row.field]):
            assert row.value == str(truth.loc[row.query, row.field]), row
            checked += 1
    assert checked >= len(files)


@pytest.mark.data
def test_an_existing_output_is_refused_before_any_work(ref, cli, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the output must be checked before tokenizing")

    monkeypatch.setattr(bs.pp, "tokenize", no_work)
    manifest = (ref / "model.json").read_bytes()
    result = cli("reference", "encode-hg19", "-o", ref, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert f"{ref} already exists; pass --overwrite to replace it" in result.stderr
    assert (ref / "model.json").read_bytes() == manifest
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    result = cli("reference", "encode-hg19", "-o", other, "--overwrite", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "not a bedspace model folder, so --overwrite does not delete it" in result.stderr
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "a_file").write_text("x")
    result = cli("reference", "encode-hg19", "-o", tmp_path / "a_file", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "is a file" in result.stderr


@pytest.mark.data
def test_overwrite_replaces_a_model_folder(ref, cli, tmp_path, monkeypatch):
    """``--overwrite`` replaces a model folder (the build is the fixture's, loaded: no second training here)."""
    built = bs.BEDSpaceModel.load(ref)
    monkeypatch.setattr(reference, "build_reference", lambda *args, **kwargs: built)
    target = tmp_path / "old"
    shutil.copytree(ref, target)
    (target / "model.json").write_text((target / "model.json").read_text().replace('"epochs": 3', '"epochs": 4'))
    with pytest.raises(ValueError, match="model.json"):
        bs.BEDSpaceModel.load(target)  # an earlier model, not this build
    result = cli("reference", "encode-hg19", "-o", target, "--overwrite", cwd=tmp_path)
    assert f"saved the model folder {target}" in result.stderr
    assert bs.BEDSpaceModel.load(target).params == built.params


def test_an_unknown_reference_is_refused_listing_the_choices(cli, tmp_path):
    result = cli("reference", "encode-hg38", "-o", "ref", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "invalid choice: 'encode-hg38'" in result.stderr and "encode-hg19" in result.stderr
    assert not (tmp_path / "ref").exists()
    with pytest.raises(ValueError, match="unknown reference 'encode-hg38'; choose one of: encode-hg19"):
        reference.write_reference("encode-hg38", tmp_path / "ref")
    # the command line spells the names without importing the datasets; they must be the same
    assert set(cli_reference.NAMES) == set(reference.REFERENCES)


def test_help_lists_the_command_and_its_examples(cli, tmp_path):
    assert "reference" in cli("--help", cwd=tmp_path).stdout
    text = cli("reference", "--help", cwd=tmp_path).stdout
    assert "examples:" in text and "bedspace reference encode-hg19 -o ref/" in text
    assert "bedspace search -t r2l -d ref/ -q my_peaks/" in text
    for option in ("--dim", "--epochs", "--jobs", "--seed", "--data", "--overwrite"):
        assert option in text


def test_bad_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="dim must be"):
        bs.datasets.encode_hg19_reference(dim=0)
    with pytest.raises(ValueError, match="random_state must be"):
        reference.write_reference("encode-hg19", tmp_path / "ref", random_state=-1)
    assert not (tmp_path / "ref").exists()


def test_the_defaults_are_those_the_docs_give():
    """``--dim``, ``--epochs``, ``--seed``, ``-j`` and the labels: the package's defaults, as docs/cli.md says.

    No ``--dim`` or ``--epochs``: the default space; either given: StarSpace's objective, the other at its default.
    """
    defaults = TrainParams()
    args = build_parser().parse_args(["reference", "encode-hg19", "-o", "ref"])
    assert (args.dim, args.epochs, args.seed, args.jobs, args.data) == (None, None, 0, None, None)
    python = inspect.signature(bs.datasets.encode_hg19_reference).parameters
    assert (python["dim"].default, python["epochs"].default, python["random_state"].default) == (None, None, 0)
    assert reference.cache_folder("encode-hg19", dim=None, epochs=None, random_state=0).name.endswith(
        "-annotator-seed0"
    )
    assert reference.cache_folder("encode-hg19", dim=None, epochs=7, random_state=0).name.endswith(
        f"-dim{defaults.dim}-epochs7-seed0"
    )
    assert python["n_jobs"].default is None
    assert inspect.signature(bs.tl.train).parameters["random_state"].default == 0
    assert inspect.signature(bs.tl.train).parameters["calibrate"].default is True
    recipe = reference.recipe("encode-hg19")
    assert list(recipe.labels) == LABELS and recipe.universe == "consensus"
    page = (ROOT / "docs" / "cli.md").read_text()
    section = " ".join(page.split("## `bedspace reference`", 1)[1].split("\n## ", 1)[0].split())
    assert "`--dim`" in section and "`--epochs`" in section and "StarSpace's objective" in section
    assert "`--seed` (default 0)" in section
    assert "`organ`, `cell_class` and `assay`" in section
    assert "consensus universe" in section
    usage = (ROOT / "docs" / "usage.md").read_text()
    assert "bedspace reference encode-hg19 -o ref/" in usage
    assert "bedspace reference encode-hg19 -o ref/" in (ROOT / "README.md").read_text()
    assert re.search(r"\bencode_hg19_reference\b", (ROOT / "docs" / "api.md").read_text())


# -- Python: built once into the cache, loaded afterwards -------------------------------------------------------------


@pytest.mark.data
def test_the_python_reference_is_built_once_then_loaded(cached, ref, queries):
    model, builds, mp = cached
    assert len(builds) == 1
    folder = reference.cache_folder("encode-hg19", **SMALL, random_state=0)
    assert folder.parent == bs.datasets.cache_dir() / "encode_hg19_reference"
    manifest = folder / "model.json"
    mtime = manifest.stat().st_mtime_ns
    again = bs.datasets.encode_hg19_reference(**SMALL, n_jobs=1)
    assert len(builds) == 1 and manifest.stat().st_mtime_ns == mtime  # loaded, not built again
    assert again.params == model.params
    # the same options and seed as the command line's (one thread each): the same model, the same answers
    from_cli = bs.BEDSpaceModel.load(ref)
    np.testing.assert_array_equal(np.asarray(again.region_vectors), np.asarray(from_cli.region_vectors))
    pd.testing.assert_frame_equal(again.search(queries, search_type="r2l"), from_cli.search(queries, search_type="r2l"))


@pytest.mark.data
def test_other_options_or_versions_build_again(cached, monkeypatch):
    """The cache folder's name is its key; a build of another bedspace version is removed (builds faked here)."""
    model, builds, _ = cached
    fake = []
    monkeypatch.setattr(reference, "build_reference", lambda *args, **kwargs: fake.append(kwargs) or model)
    first = reference.cache_folder("encode-hg19", **SMALL, random_state=0)
    bs.datasets.encode_hg19_reference(dim=16, epochs=4, n_jobs=1)  # other options: another build, kept beside
    assert len(fake) == 1 and fake[0]["epochs"] == 4
    second = reference.cache_folder("encode-hg19", dim=16, epochs=4, random_state=0)
    assert first.is_dir() and second.is_dir()
    bs.datasets.encode_hg19_reference(dim=16, epochs=4, n_jobs=1)
    assert len(fake) == 1
    monkeypatch.setattr(reference, "__version__", "999.0")  # a new bedspace: built again, the old builds removed
    bs.datasets.encode_hg19_reference(**SMALL, n_jobs=1)
    assert len(fake) == 2
    assert sorted(p.name for p in first.parent.iterdir() if not p.name.startswith(".")) == ["999.0-dim16-epochs3-seed0"]


@pytest.mark.data
def test_a_damaged_cached_reference_is_built_again(cached, monkeypatch):
    model, _, _ = cached
    fake = []
    monkeypatch.setattr(reference, "build_reference", lambda *args, **kwargs: fake.append(kwargs) or model)
    folder = reference.cache_folder("encode-hg19", dim=8, epochs=3, random_state=1)
    model.save(folder)
    bs.datasets.encode_hg19_reference(dim=8, epochs=3, random_state=1)
    assert fake == []
    labels = folder / "labels.tsv"
    labels.write_text(labels.read_text().replace("blood", "bl00d"))
    with pytest.warns(bs.BEDSpaceWarning, match="cannot be read .*building it again"):
        bs.datasets.encode_hg19_reference(dim=8, epochs=3, random_state=1)
    assert len(fake) == 1
    bs.BEDSpaceModel.load(folder)  # whole again
