"""A separate process that saves or loads one model folder again and again, for the concurrent-model tests.

Run as ``python _model_child.py '<json>'``; prints one JSON line with the outcome.

``{"role": "saver", "models": [folder_a, folder_b], "path": ..., "go": path, "stop": path}`` loads the models
``folder_a`` and ``folder_b`` once, then saves them in turn to ``path`` (``overwrite=True``) until ``stop`` exists;
reports how many saves it made.

``{"role": "loader", "path": ..., "ready": path, "stop": path, "seconds": s, "max_seconds": s, "loads": n,
"query": path}`` loads ``path`` and reads every part of the model (label vectors, region vectors, set vectors, the
sets' metadata, an r2l answer), for ``seconds`` and on until it has seen both models, at most ``max_seconds`` or
``loads`` loads, or until ``stop`` exists. Each part is recognised by its mark (the
models differ in every part: see the test); a load whose parts come from two saves is a mix. Reports the loads,
the mixes, and every error's type and message.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

DEADLINE = 60  # seconds: no child outlives a broken test


def wait_for(path: str | None) -> None:
    end = time.monotonic() + DEADLINE
    while path is not None and not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.002)


def marks(model, query) -> dict[str, str]:
    """Which save each part of a loaded model comes from ("A" or "B"), each part read through the model."""
    return {
        "model.json": str(model.params["mark"]),
        "label_vectors": "A" if model.label_vectors[0, 0] > 0 else "B",
        "region_vectors": "A" if float(model.region_vectors[:, 0].sum()) > 0 else "B",
        "set_vectors": "A" if model.set_vectors[0, 0] > 0 else "B",
        "sets": str(model.set_metadata["mark"].iloc[0]),
        "annotator": str(model.search(query, search_type="r2l", field="mark", top_k=1)["value"].iloc[0]),
    }


def saver(task: dict) -> dict:
    import bedspace as bs

    models = [bs.BEDSpaceModel.load(folder) for folder in task["models"]]
    for model in models:  # read every part now: the saves below only write
        model.region_vectors, model.set_metadata  # noqa: B018
    Path(task["ready"]).touch()
    wait_for(task.get("go"))
    saves = 0
    end = time.monotonic() + DEADLINE
    while not os.path.exists(task["stop"]) and time.monotonic() < end:
        models[saves % 2].save(task["path"], overwrite=True)
        saves += 1
    return {"saves": saves}


def loader(task: dict) -> dict:
    import bedspace as bs

    warnings.simplefilter("ignore")
    marks(bs.BEDSpaceModel.load(task["path"]), task["query"])  # imports and compiles before the clock starts
    Path(task["ready"]).touch()
    wait_for(task.get("go"))
    loads, mixes, errors, seen = 0, [], [], {"A": 0, "B": 0}
    start = time.monotonic()

    def more() -> bool:
        # at least "seconds", then on until both saves were seen (a busy machine saves slowly), at most "max_seconds"
        elapsed = time.monotonic() - start
        enough = elapsed >= task["seconds"] and min(seen.values()) > 0
        return not enough and elapsed < min(task["max_seconds"], DEADLINE) and loads < task["loads"]

    while not os.path.exists(task["stop"]) and more():
        loads += 1
        try:
            found = marks(bs.BEDSpaceModel.load(task["path"]), task["query"])
        except Exception as err:  # every failure is reported, with its message, and judged by the test
            errors.append([type(err).__name__, str(err)])
            continue
        if len(set(found.values())) != 1:
            mixes.append(found)
        else:
            seen[next(iter(found.values()))] += 1
    return {"loads": loads, "mixes": mixes, "errors": errors, "seen": seen}


if __name__ == "__main__":
    task = json.loads(sys.argv[1])
    print(json.dumps(saver(task) if task["role"] == "saver" else loader(task)), flush=True)
