"""A separate process that writes (or watches) one output through bedspace/_atomic.py, for the concurrency tests.

Run as ``python _atomic_child.py '<json>'``; prints one JSON line with the outcome. The module is loaded from its
file (it needs only the standard library), so a child starts fast and does not import the rest of bedspace; set
``BEDSPACE_ATOMIC_SOURCE`` to run the children on another version of it (e.g. to see these tests fail on one
without locks).

``{"role": "writer", "kind": "folder"|"file", "path": ..., "overwrite": bool, "tag": str, "files": int,
"repeat": int, "go": path|null, "inside": path|null, "release": path|null, "hold": seconds, "durable": bool}``
writes ``repeat`` times; inside the write it touches ``inside``, then waits for ``release`` to exist or sleeps
``hold``.
``{"role": "reader", "path": ..., "ready": path, "stop": path}`` checks that ``path`` is a folder until ``stop``
exists, and reports how often it looked and how often it found nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

DEADLINE = 60  # seconds: no child outlives a broken test


def load_atomic():
    source = os.environ.get("BEDSPACE_ATOMIC_SOURCE") or Path(__file__).parents[2] / "bedspace" / "_atomic.py"
    spec = importlib.util.spec_from_file_location("bedspace_atomic_under_test", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(path: str | None) -> None:
    end = time.monotonic() + DEADLINE
    while path is not None and not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.002)


def pause(task: dict) -> None:
    if task.get("inside"):
        Path(task["inside"]).touch()
    if task.get("release"):
        wait_for(task["release"])
    time.sleep(task.get("hold", 0))


def write_folder(atomic, task: dict) -> None:
    # "durable" is passed only when asked for, so that the child can also run the module of an earlier bedspace
    options = {"durable": task["durable"]} if "durable" in task else {}
    with atomic.atomic_folder(Path(task["path"]), overwrite=task["overwrite"], **options) as tmp:
        for i in range(task["files"]):
            (tmp / f"part{i}.txt").write_text(task["tag"])
        pause(task)
        (tmp / "complete.txt").write_text(f"{task['tag']}\n{task['files']}\n")


def write_file(atomic, task: dict) -> None:
    with atomic.atomic_path(Path(task["path"])) as tmp, open(tmp, "w") as out:
        out.write(task["tag"] * 1000)
        out.flush()
        pause(task)
        out.write("\ncomplete\n")


def writer(task: dict) -> dict:
    atomic = load_atomic()
    wait_for(task.get("go"))
    write = write_folder if task["kind"] == "folder" else write_file
    try:
        for _ in range(task.get("repeat", 1)):
            write(atomic, task)
    except OSError as err:
        return {"ok": False, "error": type(err).__name__, "message": str(err)}
    return {"ok": True}


def reader(task: dict) -> dict:
    Path(task["ready"]).touch()
    checks = missing = 0
    end = time.monotonic() + DEADLINE
    while not os.path.exists(task["stop"]) and time.monotonic() < end:
        checks += 1
        if not os.path.isdir(task["path"]):
            missing += 1
    return {"checks": checks, "missing": missing}


if __name__ == "__main__":
    task = json.loads(sys.argv[1])
    print(json.dumps(writer(task) if task["role"] == "writer" else reader(task)), flush=True)
