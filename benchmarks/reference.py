"""A ready reference: ``bedspace reference encode-hg19`` build time, then r2l per file after the folder is loaded.

    python benchmarks/reference.py [--files 20] [--workdir DIR]

Builds the reference with the command line's defaults (the default space, all cores, seed 0) from the local copy
of the hg19 collection (``$BEDSPACE_DATA_DIR``, as a download would leave it in the cache; the download itself is
not timed), and prints the build's wall time and the folder's size. Then, in one process, loads the folder and
annotates ``--files`` of the collection's BED files (a third of them from each of its three kinds, read as new
files) one ``search`` at a time — the time per file after loading, median and max, the target being at most
0.3 s — and all of them in one search (one table); and times one ``bedspace search -t r2l -d REF -q FOLDER``
process over the same files, Python's start and the load included.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402


def size_of(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bedspace_reference_"))
    reference = work / "ref"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bedspace", "reference", "encode-hg19", "-o", str(reference), "--overwrite"],
                   check=True, capture_output=True)  # fmt: skip
    build = time.perf_counter() - t0
    print(f"bedspace reference encode-hg19 (defaults): {build:.0f} s, folder {size_of(reference):.0f} MB")

    data = bs.datasets.encode_hg19()
    metadata = pd.read_csv(data.metadata)
    per_kind = -(-args.files // metadata["collection"].nunique())
    names = metadata.groupby("collection").head(per_kind)["file_name"].head(args.files)
    queries = work / "queries"
    queries.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(data.beds / name, queries / name)
    files = sorted(queries.iterdir())

    t0 = time.perf_counter()
    model = bs.BEDSpaceModel.load(reference)
    load = time.perf_counter() - t0
    model.search(files[0], search_type="r2l")  # the first query compiles and reads what later ones reuse
    seconds = []
    for path in files:
        t0 = time.perf_counter()
        model.search(path, search_type="r2l")
        seconds.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.search([str(p) for p in files], search_type="r2l")
    together = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bedspace", "search", "-t", "r2l", "-d", str(reference), "-q", str(queries)],
                   check=True, capture_output=True)  # fmt: skip
    process = time.perf_counter() - t0
    print(f"load {load:.2f} s; r2l one file at a time over {len(files)} files: median {np.median(seconds):.3f} s, "
          f"max {max(seconds):.3f} s (target ≤ 0.3 s); all {len(files)} in one search {together:.2f} s "
          f"({together / len(files):.3f} s a file); one `bedspace search` process over the folder {process:.1f} s")  # fmt: skip
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
