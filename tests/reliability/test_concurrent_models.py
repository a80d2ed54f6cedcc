"""Model folders saved, replaced, deleted and edited while they are loaded and used (issue 24).

Two models, A and B, differ in every part a load reads — ``model.json`` (``params["mark"]``), the label, region and
set vectors (positive in A, negative in B), the sets' metadata (a ``mark`` column) and the annotator (which answers
``mark=A`` or ``mark=B``) — so that a model made of two saves is seen, whichever parts it mixes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace import BEDSpaceWarning, _folder
from bedspace._folder import ModelReplacedError, _manifest_digest
from bedspace._reference import ReferenceSets

CHILD = Path(__file__).with_name("_model_child.py")
FORMAT_2 = Path(__file__).parents[1] / "data" / "format2_insulators" / "model"


def _child_module():
    spec = importlib.util.spec_from_file_location("bedspace_model_child", CHILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


marks = _child_module().marks


# --- the two models -----------------------------------------------------------------------------------------------


def _marked(base, mark: str, sign: int) -> bs.BEDSpaceModel:
    adata = base.copy()
    adata.obs["mark"] = mark
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: 'mark' stored as categorical
        bs.tl.train(adata, labels=["target", "mark"], dim=8, epochs=2, n_threads=1, calibrate=False)
    model = bs.BEDSpaceModel.from_anndata(adata)
    reference = ReferenceSets(
        model.set_metadata, sign * np.abs(model.set_vectors), model.reference.tokens, annotator=model.annotator
    )
    return bs.BEDSpaceModel(
        model.universe, sign * np.abs(model.region_vectors), model.label_table, sign * np.abs(model.label_vectors),
        params={**model.params, "mark": mark}, loss=model.loss, reference=reference, provenance=model.provenance,
    )  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The folders of A and B, and a query."""
    data = bs.datasets.insulators()
    base = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)
    folder = tmp_path_factory.mktemp("models")
    saved = {mark: _marked(base, mark, sign).save(folder / mark) for mark, sign in (("A", 1), ("B", -1))}
    return saved, str(data.files[0])


@pytest.fixture
def model_a(models, tmp_path):
    """A copy of A at a path of its own (the tests replace it)."""
    (saved, _) = models
    return Path(shutil.copytree(saved["A"], tmp_path / "model"))


def load_b(models) -> bs.BEDSpaceModel:
    model = bs.BEDSpaceModel.load(models[0]["B"])
    model.region_vectors, model.set_metadata  # noqa: B018 (read every part: saving B then only writes)
    return model


def all_marks(model, query) -> set[str]:
    return set(marks(model, query).values())


def reseal(folder: Path, edit) -> None:
    """Edit model.json and give it a matching checksum, as someone editing it by hand could."""
    manifest = json.loads((folder / "model.json").read_text())
    edit(manifest)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))


def edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "model.json").read_text())
    edit(manifest)
    (folder / "model.json").write_text(json.dumps(manifest))


# --- two processes ------------------------------------------------------------------------------------------------


def start(task: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(task)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)


def wait_until(path: Path, *processes: subprocess.Popen) -> None:
    end = time.monotonic() + 90
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        for process in processes:
            assert process.poll() is None, process.communicate()
        time.sleep(0.01)


def test_a_load_during_saves_is_never_a_mix_of_two_saves(models, model_a, tmp_path):
    """One process saves A and B in turn over one path; another loads it and reads every part, again and again.

    The loader runs 4 seconds, and on until it has met both models (at most 20 seconds). Every load is one save's model, whole; a load that meets the folder replaced under it starts again, so it is
    seldom an error, and then one that says so (never "damaged").
    """
    (saved, query) = models
    ready, go, stop = tmp_path / "ready_saver", tmp_path / "go", tmp_path / "stop"
    saver = start(
        {"role": "saver", "models": [str(saved["A"]), str(saved["B"])], "path": str(model_a), "ready": str(ready),
         "go": str(go), "stop": str(stop)}
    )  # fmt: skip
    loader = start(
        {"role": "loader", "path": str(model_a), "ready": str(tmp_path / "ready_loader"), "go": str(go),
         "stop": str(stop), "seconds": 4, "max_seconds": 20, "loads": 300, "query": query}
    )  # fmt: skip
    try:
        wait_until(ready, saver, loader)
        wait_until(tmp_path / "ready_loader", saver, loader)
        go.touch()
        seen = outcome(loader)
    finally:
        stop.touch()
    saves = outcome(saver)["saves"]
    assert seen["mixes"] == [], seen["mixes"][:3]
    assert all("was replaced by another save while it was being read" in message for _, message in seen["errors"])
    assert saves >= 3 and seen["loads"] >= 10, (saves, seen["loads"])
    assert seen["seen"]["A"] > 0 and seen["seen"]["B"] > 0, seen["seen"]  # the loads met both saves
    assert seen["seen"]["A"] + seen["seen"]["B"] + len(seen["errors"]) == seen["loads"]
    assert all_marks(bs.BEDSpaceModel.load(model_a), query) in ({"A"}, {"B"})  # what the last save left


# --- a save between the load and the reads ------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["region_vectors", "set_metadata", "r2r", "l2r", "embed"])
def test_a_save_after_the_load_does_not_change_what_the_model_answers(models, model_a, part):
    """Region vectors and metadata are read at their first use: after B is saved over the path, still A's."""
    (saved, query) = models
    expected = bs.BEDSpaceModel.load(saved["A"])
    model = bs.BEDSpaceModel.load(model_a)
    load_b(models).save(model_a, overwrite=True)
    assert bs.BEDSpaceModel.load(model_a).params["mark"] == "B"
    if part == "region_vectors":
        np.testing.assert_array_equal(model.region_vectors, expected.region_vectors)
    elif part == "set_metadata":
        pd.testing.assert_frame_equal(model.set_metadata, expected.set_metadata)
    elif part == "embed":
        np.testing.assert_array_equal(model.embed(query), expected.embed(query))
    else:
        target = query if part == "r2r" else "mark=A"
        pd.testing.assert_frame_equal(model.search(target, search_type=part), expected.search(target, search_type=part))
    assert all_marks(model, query) == {"A"}


def test_a_save_while_a_file_is_being_checked_does_not_change_it(models, model_a, monkeypatch):
    """B saved over the path just as each file's checksum is computed (the moment the audit's mixes came from)."""
    (saved, query) = models
    b = load_b(models)
    real = hashlib.file_digest
    saves = []

    def save_first(handle, digest):
        if not saves or saves[-1] == "done":  # the save checksums its own files: not again inside it
            saves.append("saving")
            b.save(model_a, overwrite=True)
            saves.append("done")
        return real(handle, digest)

    monkeypatch.setattr(hashlib, "file_digest", save_first)
    model = bs.BEDSpaceModel.load(model_a)
    found = marks(model, query)
    monkeypatch.undo()
    assert saves.count("done") >= 5  # every file read was checked with a save in between
    assert set(found.values()) == {"A"}, found


def test_a_folder_replaced_while_it_is_opened_is_loaded_again_whole(models, model_a, monkeypatch):
    """Replaced after model.json was read and before the other files were opened: the load starts again, on B."""
    (_, query) = models
    b = load_b(models)
    real = _folder._read_manifest
    calls = []

    def replaced_once(folder):
        manifest = real(folder)
        if not calls:
            b.save(model_a, overwrite=True)  # A's files are deleted now
        calls.append(1)
        return manifest

    monkeypatch.setattr(_folder, "_read_manifest", replaced_once)
    model = bs.BEDSpaceModel.load(model_a)
    assert len(calls) == 2
    assert all_marks(model, query) == {"B"}


def test_a_folder_replaced_at_every_attempt_says_so(models, model_a, monkeypatch):
    b = load_b(models)
    real = _folder._read_manifest

    def always_replaced(folder):
        manifest = real(folder)
        b.save(model_a, overwrite=True)
        return manifest

    monkeypatch.setattr(_folder, "_read_manifest", always_replaced)
    with pytest.raises(ModelReplacedError, match=r"model was replaced by another save while it was being read; load"):
        bs.BEDSpaceModel.load(model_a)
    monkeypatch.undo()
    assert issubclass(ModelReplacedError, FileNotFoundError)  # the command line shows it as a user's error


def test_a_folder_removed_while_it_is_opened_says_so(model_a, monkeypatch):
    real = _folder._read_manifest
    seen = []

    def removed(folder):
        manifest = real(folder)
        shutil.rmtree(model_a)
        seen.append(folder.path)
        try:
            folder.open("region_vectors.npy")
        except ModelReplacedError as err:
            seen.append(str(err))
        return manifest

    monkeypatch.setattr(_folder, "_read_manifest", removed)
    with pytest.raises(FileNotFoundError, match=r"not a bedspace model folder: .*model does not exist"):
        bs.BEDSpaceModel.load(model_a)  # the second attempt finds nothing there
    assert seen[1] == f"{model_a} was removed or moved while it was being read; load it again from where it is"


# --- deleted while in use -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("removed", ["model.json", "region_vectors.npy", "sets.h5ad", "the folder"])
def test_files_deleted_after_the_load_are_still_the_models(models, model_a, removed):
    """Every file is opened at load: deleting one (or the folder) afterwards changes no answer."""
    (saved, query) = models
    expected = bs.BEDSpaceModel.load(saved["A"])
    model = bs.BEDSpaceModel.load(model_a)
    if removed == "the folder":
        shutil.rmtree(model_a)
    else:
        (model_a / removed).unlink()
    pd.testing.assert_frame_equal(model.search(query, search_type="r2r"), expected.search(query, search_type="r2r"))
    assert all_marks(model, query) == {"A"}
    message = {
        "model.json": r"not a bedspace model folder \(no model.json\)",
        "the folder": "does not exist",
    }.get(removed, f"model folder is incomplete, missing {removed}")
    with pytest.raises(FileNotFoundError, match=message):
        bs.BEDSpaceModel.load(model_a)


# --- what is not a model folder -----------------------------------------------------------------------------------


def test_the_folder_a_save_is_writing_is_not_loaded(models, model_a, monkeypatch):
    """Loading the hidden folder a save writes into names the model being saved."""
    b = load_b(models)
    real = _folder._write_tokens
    seen = []

    def try_to_load(tokens, tmp):
        real(tokens, tmp)
        with pytest.raises(FileNotFoundError) as err:
            bs.BEDSpaceModel.load(tmp)
        seen.append(str(err.value))

    monkeypatch.setattr(_folder, "_write_tokens", try_to_load)
    b.save(model_a, overwrite=True)
    assert len(seen) == 1
    assert "is the temporary folder of a save of" in seen[0] and seen[0].endswith(f"; load {model_a}")


@pytest.mark.parametrize("suffix", ["tmp", "old"])
def test_a_leftover_of_a_killed_save_is_not_loaded_even_complete(model_a, suffix):
    leftover = model_a.parent / f".model.0123456789ab.{suffix}"
    shutil.copytree(model_a, leftover)
    with pytest.raises(FileNotFoundError, match=rf"{leftover.name} is the temporary folder of a save of .*model"):
        bs.BEDSpaceModel.load(leftover)


# --- where a model is saved ---------------------------------------------------------------------------------------


def test_saving_into_a_missing_folder_makes_it(models, tmp_path):
    (saved, query) = models
    folder = bs.BEDSpaceModel.load(saved["A"]).save(tmp_path / "not" / "yet" / "model")
    assert folder == tmp_path / "not" / "yet" / "model"
    assert all_marks(bs.BEDSpaceModel.load(folder), query) == {"A"}


@pytest.mark.parametrize("target", ["notes.txt", "notes.txt/model", "notes.txt/deeper/model"])
def test_saving_where_a_file_is_names_the_file(models, tmp_path, target):
    (tmp_path / "notes.txt").write_text("years of work")
    model = bs.BEDSpaceModel.load(models[0]["A"])
    expected = "a file of that name is there" if target == "notes.txt" else "notes.txt is a file, not a folder"
    with pytest.raises(NotADirectoryError, match=expected):
        model.save(tmp_path / target, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, where no folder can be made")
def test_saving_where_no_folder_can_be_made_names_it(models):
    model = bs.BEDSpaceModel.load(models[0]["A"])
    with pytest.raises(OSError, match=r"cannot make the folder /proc/bedspace-test to write /proc/bedspace-test/m"):
        model.save("/proc/bedspace-test/m")


def test_loading_a_file_or_nothing_says_which(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"model.json is a file"):
        bs.BEDSpaceModel.load(tmp_path / "model.json")
    with pytest.raises(FileNotFoundError, match=r"nothing does not exist"):
        bs.BEDSpaceModel.load(tmp_path / "nothing")


# --- model.json edited by hand --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["files"].pop("annotator"),
        lambda m: m["files"].pop("region_vectors"),
        lambda m: m.pop("manifest_sha256"),
        lambda m: m.update(manifest_sha256="0" * 64),
    ],
    ids=["no annotator", "no region vectors", "no checksum", "another checksum"],
)
def test_an_edited_manifest_without_its_checksum_is_refused(model_a, edit):
    edit_manifest(model_a, edit)
    with pytest.raises(ValueError, match="model.json does not match its own checksum"):
        bs.BEDSpaceModel.load(model_a)


def test_a_resealed_manifest_without_the_annotator_says_so(models, model_a):
    """model.json rewritten by hand, its checksum made to match, without the annotator: r2l by cosines, told."""
    (_, query) = models
    reseal(model_a, lambda m: m["files"].pop("annotator"))
    with pytest.warns(BEDSpaceWarning, match=r"carries no annotator \(model.json lists no annotator file\)"):
        model = bs.BEDSpaceModel.load(model_a)
    assert model.annotator is None
    table = model.search(query, search_type="r2l")
    assert "probability" not in table.columns  # the embedding's cosines: what the warning said


def test_a_resealed_manifest_without_the_sets_says_so(model_a):
    def drop_sets(manifest):
        for role in ("sets", "set_vectors", "tokens_indptr", "tokens_gaps", "tokens_escaped", "tokens_escaped_ptr"):
            manifest["files"].pop(role)
        manifest["files"].pop("annotator")

    reseal(model_a, drop_sets)
    with pytest.warns(BEDSpaceWarning, match=r"carries no reference sets and no annotator .* no 'sets' file"):
        model = bs.BEDSpaceModel.load(model_a)
    assert model.reference is None


def test_a_model_saved_without_tokens_says_it_has_no_annotator(models, tmp_path):
    """Not an edit: sets carried without their tokens (no annotator can run). Told, like an edit, at every load."""
    (saved, query) = models
    a = bs.BEDSpaceModel.load(saved["A"])
    a.with_reference(ReferenceSets(a.set_metadata, np.asarray(a.set_vectors))).save(tmp_path / "plain")
    with pytest.warns(BEDSpaceWarning, match=r"carries no annotator \(model.json lists no annotator file nor tokens\)"):
        model = bs.BEDSpaceModel.load(tmp_path / "plain")
    assert "probability" not in model.search(query, search_type="r2l").columns


def test_a_resealed_manifest_with_an_annotator_but_no_tokens_is_refused(model_a):
    def drop_tokens(manifest):
        for role in ("tokens_indptr", "tokens_gaps", "tokens_escaped", "tokens_escaped_ptr"):
            manifest["files"].pop(role)

    reseal(model_a, drop_tokens)
    with pytest.raises(ValueError, match="lists an annotator but not the sets' tokens it compares"):
        bs.BEDSpaceModel.load(model_a)


def test_a_resealed_manifest_without_a_required_file_is_refused(model_a):
    reseal(model_a, lambda m: m["files"].pop("label_vectors"))
    with pytest.raises(ValueError, match=r"'files' must list \['label_vectors', 'labels', 'region_vectors'"):
        bs.BEDSpaceModel.load(model_a)


def test_a_format_3_folder_relabelled_format_2_is_refused(model_a):
    """format_version lowered to 2 (which has no checksum of its own) to get past the check: the files say no."""

    def downgrade(manifest):
        manifest["format_version"] = 2
        manifest.pop("manifest_sha256")

    edit_manifest(model_a, downgrade)
    with pytest.raises(ValueError, match=r"says format_version 2, but holds what only format 3 writes \(annotator, "):
        bs.BEDSpaceModel.load(model_a)
    edit_manifest(model_a, lambda m: [m["files"].pop(r) for r in list(m["files"]) if r not in _folder.FILES])
    with pytest.raises(ValueError, match=r"format 3 writes \(the universe as universe.npz\): it was edited"):
        bs.BEDSpaceModel.load(model_a)


def test_a_format_2_folder_without_its_reference_says_so(tmp_path):
    """The audit's case: format 2 has no checksum of model.json; without 'reference', r2l is by cosines, told."""
    folder = Path(shutil.copytree(FORMAT_2, tmp_path / "model"))
    edit_manifest(folder, lambda m: m["files"].pop("reference"))
    with pytest.warns(BEDSpaceWarning, match=r"carries no reference sets and no annotator .* no 'reference' file"):
        model = bs.BEDSpaceModel.load(folder)
    assert model.reference is None


def test_a_whole_model_loads_without_a_warning(model_a):
    with warnings.catch_warnings():
        warnings.simplefilter("error", BEDSpaceWarning)
        model = bs.BEDSpaceModel.load(model_a)
    assert model.can_annotate


def test_every_file_is_closed_once_read(model_a):
    """A loaded model holds only the files it has not read yet and those it maps (CPython's mmap keeps a descriptor)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")

    def held() -> list[str]:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the descriptor listdir itself used
                continue
        return sorted(Path(t).name for t in targets if Path(t).parent == model_a)

    mapped = ["set_vectors.npy", "tokens_gaps.npy"]
    model = bs.BEDSpaceModel.load(model_a)
    assert held() == sorted([*mapped, "region_vectors.npy", "sets.h5ad"])
    model.region_vectors, model.set_metadata  # noqa: B018
    assert held() == sorted([*mapped, "region_vectors.npy"])
    del model
    assert held() == []
