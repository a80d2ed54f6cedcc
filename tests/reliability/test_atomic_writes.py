"""Atomic writes under umasks, concurrent writers, crashes (SIGKILL) and targets that must not be replaced."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bedspace import _atomic
from bedspace._atomic import NotReplaceableError, atomic_folder, atomic_path, atomic_write_bytes

CHILD = Path(__file__).with_name("_atomic_child.py")


# --- helpers ------------------------------------------------------------------------------------------------------


def start(task: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(task)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    return json.loads(out)


def writer(path: Path, tag: str, **options) -> dict:
    return {"role": "writer", "kind": "folder", "path": str(path), "overwrite": False, "tag": tag, "files": 5} | options


def wait_until(path: Path, process: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.005)


def assert_complete_folder(path: Path, tag: str | None = None, files: int = 5) -> str:
    """``path`` holds one writer's whole output (every part written by the same writer); returns its tag."""
    lines = (path / "complete.txt").read_text().split()
    assert lines[1] == str(files)
    assert sorted(p.name for p in path.iterdir()) == sorted(["complete.txt", *(f"part{i}.txt" for i in range(files))])
    assert {(path / f"part{i}.txt").read_text() for i in range(files)} == {lines[0]}
    assert tag is None or lines[0] == tag
    return lines[0]


def assert_no_leftovers(folder: Path, *keep: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


def write_folder(path: Path, tag: str, *, files: int = 5, **options) -> None:
    with atomic_folder(path, **options) as tmp:
        for i in range(files):
            (tmp / f"part{i}.txt").write_text(tag)
        (tmp / "complete.txt").write_text(f"{tag}\n{files}\n")


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- permissions ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_outputs_get_ordinary_permissions(tmp_path, umask, mask):
    umask(mask)
    atomic_write_bytes(b"new", tmp_path / "new.txt")
    (tmp_path / "old.txt").write_bytes(b"old")
    os.chmod(tmp_path / "old.txt", 0o600)
    with atomic_path(tmp_path / "old.txt") as tmp, open(tmp, "w") as out:
        out.write("replaced")
    write_folder(tmp_path / "model", "a")
    write_folder(tmp_path / "model", "b", overwrite=True)
    write_folder(tmp_path / "deep" / "er", "c")
    assert mode(tmp_path / "new.txt") == 0o666 & ~mask
    assert mode(tmp_path / "old.txt") == 0o666 & ~mask
    assert (tmp_path / "old.txt").read_text() == "replaced"
    assert mode(tmp_path / "model") == 0o777 & ~mask
    assert mode(tmp_path / "deep" / "er") == 0o777 & ~mask
    assert_complete_folder(tmp_path / "model", "b")
    assert_no_leftovers(tmp_path, "new.txt", "old.txt", "model", "deep")


# --- errors leave the earlier output, and nothing else ----------------------------------------------------------------


def test_an_error_while_writing_keeps_the_earlier_output(tmp_path):
    write_folder(tmp_path / "model", "first")
    atomic_write_bytes(b"first", tmp_path / "file.txt")
    with pytest.raises(OSError, match="disk full"), atomic_folder(tmp_path / "model", overwrite=True) as tmp:
        (tmp / "part0.txt").write_text("second")
        raise OSError("disk full")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "file.txt") as tmp:
        tmp.write_bytes(b"sec")
        raise KeyboardInterrupt
    assert_complete_folder(tmp_path / "model", "first")
    assert (tmp_path / "file.txt").read_bytes() == b"first"
    assert_no_leftovers(tmp_path, "model", "file.txt")


# --- targets that must not be replaced ------------------------------------------------------------------------------


def is_model(folder: Path) -> bool:
    try:
        return json.loads((folder / "model.json").read_text()).get("format") == "bedspace-model"
    except (OSError, ValueError):
        return False


def test_overwrite_replaces_only_what_replaceable_accepts(tmp_path):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "thesis.tex").write_text("years of work")
    with pytest.raises(NotReplaceableError, match=f"refusing to replace the folder {project}: it is not the kind"):
        with atomic_folder(project, overwrite=True, replaceable=is_model) as tmp:
            (tmp / "model.json").write_text('{"format": "bedspace-model"}')
    assert (project / "thesis.tex").read_text() == "years of work"
    assert_no_leftovers(tmp_path, "my_project")

    model = tmp_path / "model"
    for generation in ("1", "2"):
        with atomic_folder(model, overwrite=True, replaceable=is_model) as tmp:
            (tmp / "model.json").write_text(json.dumps({"format": "bedspace-model", "generation": generation}))
    assert json.loads((model / "model.json").read_text())["generation"] == "2"
    assert issubclass(NotReplaceableError, FileExistsError)


@pytest.mark.parametrize("target", [".", "..", "here", "parent"])
def test_refuses_the_current_folder_and_its_parents(tmp_path, monkeypatch, target):
    here = tmp_path / "parent" / "here"
    here.mkdir(parents=True)
    (here / "data.txt").write_text("keep")
    monkeypatch.chdir(here)
    path = {"here": here, "parent": tmp_path / "parent"}.get(target, target)
    with pytest.raises(ValueError, match="refusing to .*current folder"):
        with atomic_folder(path, overwrite=True):
            pass
    assert (here / "data.txt").read_text() == "keep"
    assert_no_leftovers(here, "data.txt")
    assert_no_leftovers(tmp_path / "parent", "here")


def test_a_file_is_not_replaced_by_a_folder_nor_a_folder_by_a_file(tmp_path):
    (tmp_path / "model").write_text("a file")
    write_folder(tmp_path / "out.txt", "folder")
    for overwrite in (False, True):
        with pytest.raises(NotADirectoryError, match=f"folder {tmp_path / 'model'}: a file of that name is there"):
            write_folder(tmp_path / "model", "x", overwrite=overwrite)
    with pytest.raises(IsADirectoryError, match=f"file {tmp_path / 'out.txt'}: a folder of that name is there"):
        atomic_write_bytes(b"x", tmp_path / "out.txt")
    assert (tmp_path / "model").read_text() == "a file"
    assert_complete_folder(tmp_path / "out.txt", "folder")
    assert_no_leftovers(tmp_path, "model", "out.txt")


def test_a_symlink_at_the_path_is_replaced_not_its_target(tmp_path):
    write_folder(tmp_path / "real", "target")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write_folder(tmp_path / "link", "new", overwrite=True)
    assert not (tmp_path / "link").is_symlink()
    assert_complete_folder(tmp_path / "link", "new")
    assert_complete_folder(tmp_path / "real", "target")


def test_writing_a_path_inside_its_own_write_is_an_error_not_a_hang(tmp_path):
    with atomic_folder(tmp_path / "model"), pytest.raises(RuntimeError, match="already being written by this thread"):
        with atomic_folder(tmp_path / "model", overwrite=True):
            pass
    assert_no_leftovers(tmp_path, "model")


# --- concurrent writers ---------------------------------------------------------------------------------------------


def test_two_processes_without_overwrite_one_wins_the_other_is_told(tmp_path):
    go = tmp_path / "go"
    path = tmp_path / "out" / "model"
    children = [start(writer(path, tag, go=str(go), hold=0.3)) for tag in ("a", "b")]
    time.sleep(0.5)  # both are past their imports and waiting for go
    go.touch()
    results = [outcome(child) for child in children]
    assert sorted(r["ok"] for r in results) == [False, True]
    loser = next(r for r in results if not r["ok"])
    assert loser["error"] == "FileExistsError"
    assert f"{path} already exists" in loser["message"]
    winner = "ab"[[r["ok"] for r in results].index(True)]
    assert_complete_folder(path, winner)
    assert_no_leftovers(path.parent, "model")


def test_processes_overwriting_at_once_take_turns_and_all_succeed(tmp_path):
    # unlocked, such writers failed with "Directory not empty" or "No such file or directory" (most runs of this)
    go = tmp_path / "go"
    path = tmp_path / "model"
    write_folder(path, "earlier")
    # not durable: the lock is under test, and 240 folder writes with fsync take ~15 s on a slow disk
    children = [start(writer(path, tag, go=str(go), overwrite=True, repeat=80, durable=False)) for tag in "abc"]
    time.sleep(0.5)
    go.touch()
    assert [outcome(child) for child in children] == [{"ok": True}] * 3
    assert assert_complete_folder(path) in "abc"
    assert_no_leftovers(tmp_path, "go", "model")


def test_threads_writing_one_path_take_turns(tmp_path):
    errors = []

    def run(tag):
        try:
            for _ in range(5):
                write_folder(tmp_path / "model", tag, overwrite=True)
        except Exception as err:  # collected: an exception in a thread would otherwise vanish
            errors.append(err)

    threads = [threading.Thread(target=run, args=(tag,)) for tag in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert_complete_folder(tmp_path / "model")
    assert_no_leftovers(tmp_path, "model")


def test_a_reader_never_finds_the_folder_missing_while_it_is_replaced(tmp_path):
    path = tmp_path / "model"
    write_folder(path, "0")
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    reader = start({"role": "reader", "path": str(path), "ready": str(ready), "stop": str(stop)})
    wait_until(ready, reader)
    end = time.monotonic() + 20
    replaced = 0
    while replaced < 600 and time.monotonic() < end:
        replaced += 1
        write_folder(path, str(replaced), files=2, overwrite=True, durable=False)  # fast swaps: more chances to miss
    stop.touch()
    seen = outcome(reader)
    assert replaced >= 50
    assert seen["checks"] > 1000  # the reader really looked while the folder was being replaced
    assert seen["missing"] == 0, seen
    assert_complete_folder(path, str(replaced), files=2)


def test_without_renameat2_the_two_rename_fallback_still_replaces(tmp_path, monkeypatch):
    monkeypatch.setattr(_atomic, "_renameat2", None)
    write_folder(tmp_path / "model", "a")
    write_folder(tmp_path / "model", "b", overwrite=True)
    assert_complete_folder(tmp_path / "model", "b")
    assert_no_leftovers(tmp_path, "model")


def test_without_fcntl_writes_are_still_atomic(tmp_path, monkeypatch):
    # as on Windows: no lock (and so no lock file), every other guarantee kept
    monkeypatch.setattr(_atomic, "fcntl", None)
    write_folder(tmp_path / "model", "a")
    with pytest.raises(OSError, match="disk full"), atomic_folder(tmp_path / "model", overwrite=True):
        raise OSError("disk full")
    write_folder(tmp_path / "model", "b", overwrite=True)
    atomic_write_bytes(b"x", tmp_path / "file.txt")
    assert_complete_folder(tmp_path / "model", "b")
    assert_no_leftovers(tmp_path, "model", "file.txt")


# --- crashes ---------------------------------------------------------------------------------------------------------


def kill_inside_write(task: dict, tmp_path: Path) -> None:
    """Start a writer, SIGKILL it once it is inside the write (output half written)."""
    inside = tmp_path / "inside"
    child = start(task | {"inside": str(inside), "hold": 60})
    wait_until(inside, child)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    inside.unlink()


@pytest.mark.parametrize("earlier", [False, True], ids=["first-write", "replacing"])
def test_a_killed_folder_writer_is_cleaned_up_by_the_next_write(tmp_path, earlier):
    out = tmp_path / "out"
    if earlier:
        write_folder(out / "model", "earlier")
    kill_inside_write(writer(out / "model", "killed", overwrite=True), tmp_path)
    left = sorted(p.name for p in out.iterdir())
    assert ".model.lock" in left
    assert any(name.startswith(".model.") and name.endswith(".tmp") for name in left)
    if earlier:
        assert_complete_folder(out / "model", "earlier")  # the crash did not touch the earlier output
    write_folder(out / "model", "next", overwrite=True)
    assert_complete_folder(out / "model", "next")
    assert_no_leftovers(out, "model")


def test_a_killed_file_writer_is_cleaned_up_by_the_next_write(tmp_path):
    path = tmp_path / "training.txt"
    atomic_write_bytes(b"earlier", path)
    kill_inside_write({"role": "writer", "kind": "file", "path": str(path), "tag": "x"}, tmp_path)
    assert path.read_bytes() == b"earlier"
    assert len(list(tmp_path.glob(".training.txt.*.tmp"))) == 1
    atomic_write_bytes(b"next", path)
    assert path.read_bytes() == b"next"
    assert_no_leftovers(tmp_path, "training.txt")


def test_a_writer_waiting_on_a_killed_one_goes_ahead_and_cleans_up(tmp_path):
    path = tmp_path / "model"
    inside = tmp_path / "inside"
    first = start(writer(path, "killed", overwrite=True, inside=str(inside), hold=60))
    wait_until(inside, first)
    second = start(writer(path, "second", overwrite=True))
    time.sleep(1.0)  # the second is now waiting for the lock
    assert second.poll() is None
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert outcome(second) == {"ok": True}
    assert_complete_folder(path, "second")
    assert_no_leftovers(tmp_path, "inside", "model")


def test_a_live_writer_is_waited_for_and_its_files_are_not_touched(tmp_path):
    path = tmp_path / "model"
    inside, release = tmp_path / "inside", tmp_path / "release"
    live = start(writer(path, "live", inside=str(inside), release=str(release)))
    wait_until(inside, live)
    with pytest.raises(TimeoutError, match=rf"{path} is being written by another process \(pid {live.pid}"):
        write_folder(path, "impatient", overwrite=True, timeout=0.3)
    assert len(list(tmp_path.glob(".model.*.tmp"))) == 1  # the live writer's work is still there
    release.touch()
    assert outcome(live) == {"ok": True}
    assert_complete_folder(path, "live")
    assert_no_leftovers(tmp_path, "inside", "release", "model")


def test_a_crash_between_the_fallback_renames_is_repaired(tmp_path):
    """The state the two-rename fallback leaves if killed between its renames: the path gone, .old and .tmp beside."""
    out = tmp_path / "out"
    write_folder(out / ".model.0123456789ab.old", "earlier")
    write_folder(out / ".model.ba9876543210.tmp", "unfinished")
    (out / ".model.lock").write_text("4242\n")  # the dead writer's pid
    with pytest.raises(FileExistsError, match="already exists"):
        write_folder(out / "model", "x")
    assert_complete_folder(out / "model", "earlier")
    assert_no_leftovers(out, "model")


def test_cleanup_touches_only_this_outputs_leftovers(tmp_path):
    for name in (".model.v2.0123456789ab.tmp", ".model.0123456789ab.tmp.keep", ".other.0123456789ab.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / ".model.lock").write_text("4242\n")
    (tmp_path / ".model.0123456789ab.tmp").mkdir()
    write_folder(tmp_path / "model", "new")
    assert_no_leftovers(
        tmp_path, "model", ".model.v2.0123456789ab.tmp", ".model.0123456789ab.tmp.keep", ".other.0123456789ab.tmp"
    )
