"""Tokenization speed: bedspace vs `bedtools intersect -u`, on the real ENCODE DNase files, in one run.

    python benchmarks/tokenize.py [--universe consensus|tiles_5kb] [--limit N]

Both tools produce, for every file, the universe regions it overlaps; the script checks they are identical and
prints wall times, their ratio and peak memory. bedtools runs one process per file (how it is used), both
serially and two at a time (this machine has 2 cores); bedspace uses its default (all cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's name shadows the standard library's `tokenize` when run as a script: drop its folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402


def bedtools_rows(universe, bed, row_of):
    out = subprocess.run(
        ["bedtools", "intersect", "-u", "-a", str(universe), "-b", str(bed)], check=True, capture_output=True
    ).stdout
    lines = out.decode().splitlines()
    return np.array([row_of[line] for line in lines], dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universe", default="consensus", choices=["consensus", "tiles_5kb"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N DNase files")
    args = parser.parse_args()
    if shutil.which("bedtools") is None:
        sys.exit("bedtools is not installed (apt-get install bedtools)")

    data = bs.datasets.encode_hg19()
    metadata = pd.read_csv(data.metadata)
    names = metadata.loc[metadata["collection"] == "encode_awg_dnase", "file_name"].sort_values().tolist()
    files = [data.beds / name for name in names[: args.limit]]
    universe = data.universes[args.universe]
    print(f"{len(files)} ENCODE DNase files, universe {universe.name}, {bs.__version__=}, {args}")

    # warm up: numba compilation and the page cache, for both tools
    bs.pp.tokenize(files[:2], universe)
    for f in files[:2]:
        subprocess.run(["bedtools", "intersect", "-u", "-a", str(universe), "-b", str(f)], capture_output=True)

    t0 = time.perf_counter()
    adata = bs.pp.tokenize(files, universe)
    t_bedspace = time.perf_counter() - t0
    rss_bedspace = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # var names are chr:start-end; map bedtools' output lines to universe rows to compare exactly
    row_of = {
        f"{c}\t{s}\t{e}": i for i, (c, s, e) in enumerate(adata.var[["chrom", "start", "end"]].itertuples(index=False))
    }

    t0 = time.perf_counter()
    serial = [bedtools_rows(universe, f, row_of) for f in files]
    t_serial = time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda f: bedtools_rows(universe, f, row_of), files))
    t_parallel = time.perf_counter() - t0
    rss_bedtools = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    identical = all(
        np.array_equal(np.sort(adata.X[i].indices), rows) and np.array_equal(rows, other)
        for i, (rows, other) in enumerate(zip(serial, parallel, strict=True))
    )
    tokens = int(adata.X.nnz)
    print(f"\n{'tool':<34}{'wall s':>9}{'files/s':>9}{'vs bedspace':>13}{'peak RSS MB':>13}")
    print(
        f"{'bedspace.pp.tokenize (2 threads)':<34}{t_bedspace:>9.2f}{len(files) / t_bedspace:>9.1f}{1:>12.1f}x{rss_bedspace:>13.0f}"
    )
    print(
        f"{'bedtools intersect -u, serial':<34}{t_serial:>9.2f}{len(files) / t_serial:>9.1f}{t_serial / t_bedspace:>12.1f}x{rss_bedtools:>13.0f}"
    )
    print(
        f"{'bedtools intersect -u, 2 at once':<34}{t_parallel:>9.2f}{len(files) / t_parallel:>9.1f}{t_parallel / t_bedspace:>12.1f}x{'':>13}"
    )
    print(f"\n{tokens:,} tokens; output identical to bedtools: {identical}")
    print("peak RSS: bedspace = this Python process (includes anndata/numba); bedtools = largest child process")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
