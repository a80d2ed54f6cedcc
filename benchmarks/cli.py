"""One r2l query from the command line: a model folder of format 3 beside format 2 and the distances file.

    python benchmarks/cli.py [--repeats 5] [--epochs 5] [--workdir DIR]

The hg19 collection (172 sets, the 574,740-region consensus universe, labels organ, cell_class and assay) is
trained once (dim 100; the epochs change no number measured here) and written three ways:

* ``format 3``: ``BEDSpaceModel.save`` of this bedspace: vectors and tokens memory-mapped, the sets' metadata read
  on first use, each file checked against its checksum when first read;
* ``format 2``: the folder of bedspace as of commit ``9155df1`` (the last that wrote format 2: the tokens inside
  ``reference.h5ad``, everything read and checked at load), trained and saved by that commit's own code (taken
  from this repository with ``git archive``), so it holds exactly what such a folder held;
* ``distances``: the ``.h5ad`` that ``bedspace distances`` writes (the sets with the model), what
  ``bedspace search -d`` read before it took model folders.

For each: the folder's size, and in a fresh process per repeat: the time ``BEDSpaceModel.load`` takes, the first
``search(query, search_type="r2l")`` after it, and one whole ``bedspace search -t r2l -d ... -q QUERY`` process
(wall time and peak resident memory from ``wait4``, Python's start and imports included). The query is a BED
file (by default the collection's first, read as a new file). Medians over ``--repeats``; the page cache is warm (each row's
first run is not counted). The rows marked ``9155df1`` run that commit's code, the others this bedspace.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FORMAT_2_COMMIT = "9155df1"
REPOSITORY = Path(__file__).resolve().parent.parent
LABELS = ["organ", "cell_class", "assay"]

# Trains the hg19 model and writes it: run by this bedspace and by the format-2 commit alike (their APIs agree).
MAKE = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import bedspace as bs
    folder, distances, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = bs.datasets.encode_hg19()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    bs.tl.train(adata, labels=["organ", "cell_class", "assay"], dim=100, epochs=epochs, n_threads=2)
    model = bs.BEDSpaceModel.from_anndata(adata)
    model.save(folder, overwrite=True)
    model.to_anndata().write_h5ad(distances)
    """
)
# Times load and the first r2l in a fresh process; prints two numbers.
TIME_LOAD = textwrap.dedent(
    """
    import sys, time, warnings
    warnings.simplefilter("ignore")
    import bedspace as bs
    bs.BEDSpaceModel  # the module imported: load is timed alone
    t0 = time.perf_counter()
    model = bs.BEDSpaceModel.load(sys.argv[1])
    t1 = time.perf_counter()
    model.search(sys.argv[2], search_type="r2l")
    print(t1 - t0, time.perf_counter() - t1)
    """
)


def run(command: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB (this child alone, from wait4) and the standard output of a process.

    ``cwd`` is outside the repository: ``python -c`` and ``python -m`` put the working folder first on the path,
    where this checkout's ``bedspace`` would shadow the one ``env`` names.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed (exit {os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_maxrss / 1024, text


def folder_size(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def old_code(workdir: Path) -> Path:
    """This repository's ``bedspace`` package as of the format-2 commit, unpacked in ``workdir``."""
    target = workdir / f"bedspace-{FORMAT_2_COMMIT}"
    if not (target / "bedspace").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", FORMAT_2_COMMIT, "bedspace"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per measurement (default 5)")
    parser.add_argument(
        "--epochs", type=int, default=5, help="training epochs (default 5: nothing measured depends on it)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the models here (default: a temporary folder)")
    parser.add_argument("--query", type=Path, help="the BED file to annotate (default: the collection's first file)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bedspace-cli-"))
    workdir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    env_new = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env_old = {**env_new, "PYTHONPATH": str(old_code(workdir))}

    import bedspace as bs

    data = bs.datasets.encode_hg19()
    query = args.query or sorted(Path(data.beds).glob("*.gz"))[0]
    folders = {"format 3": workdir / "format3", "format 2": workdir / "format2"}
    distances = workdir / "distances.h5ad"
    for name, env, folder, extra in (
        ("format 3", env_new, folders["format 3"], workdir / "distances3.h5ad"),
        ("format 2", env_old, folders["format 2"], distances),
    ):
        if not (folder / "model.json").exists():
            print(f"training and writing the {name} model ...", flush=True)
            run([python, "-c", MAKE, str(folder), str(extra), str(args.epochs)], env, workdir)
    print(f"query: {query.name}; {args.repeats} fresh processes per measurement, medians\n")

    cli = [python, "-m", "bedspace", "search", "-t", "r2l", "-q", str(query), "--format", "tsv", "-d"]
    rows, answers = [], {}
    # (what, whose code, path, whether its command line can read it): bedspace 9155df1's search took only the
    # distances file, and a distances file is no model folder to load
    cases = [
        ("format 2 folder", FORMAT_2_COMMIT, folders["format 2"], False),
        ("distances .h5ad", FORMAT_2_COMMIT, distances, True),
        ("distances .h5ad", "this", distances, True),
        ("format 2 folder", "this", folders["format 2"], True),
        ("format 3 folder", "this", folders["format 3"], True),
    ]
    for label, code, path, by_cli in cases:
        env = env_old if code == FORMAT_2_COMMIT else env_new
        loads, firsts, walls, peaks = [], [], [], []
        for repeat in range(args.repeats + 1):
            if label != "distances .h5ad":
                _, _, text = run([python, "-c", TIME_LOAD, str(path), str(query)], env, workdir)
                load, first = map(float, text.split())
                if repeat:
                    loads.append(load)
                    firsts.append(first)
            if by_cli:
                wall, peak, text = run([*cli, str(path)], env, workdir)
                answers[(label, code)] = text
                if repeat:
                    walls.append(wall)
                    peaks.append(peak)
        rows.append(
            {
                "written as": label,
                "bedspace": code,
                "size MB": round(folder_size(path)),
                "load s": round(float(np.median(loads)), 2) if loads else np.nan,
                "first r2l s": round(float(np.median(firsts)), 2) if firsts else np.nan,
                "CLI r2l wall s": round(float(np.median(walls)), 2) if walls else np.nan,
                "CLI peak MB": round(float(np.median(peaks))) if peaks else np.nan,
            }
        )
        print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))
    reference = answers[("distances .h5ad", FORMAT_2_COMMIT)]
    same = {f"{label} ({code})": text == reference for (label, code), text in answers.items()}
    print(
        "\nsame r2l table as bedspace "
        + FORMAT_2_COMMIT
        + " from its distances file: "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in same.items())
    )
    sizes = {p.name: p.stat().st_size / 1e6 for p in sorted(folders["format 3"].iterdir())}
    print("format 3 files (MB): " + ", ".join(f"{name} {size:.1f}" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
