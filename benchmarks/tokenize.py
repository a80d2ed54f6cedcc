"""Tokenization speed: bedspace vs `bedtools intersect -u`, on the real ENCODE DNase files, in one run.

    python benchmarks/tokenize.py [--universe consensus|tiles_5kb] [--limit N] [--threads 2]

Both tools produce, for every file, the universe regions it overlaps. bedtools runs one process per file (how it
is used), serially (1 core) and two at a time (2 cores), each writing its output to a file; only those
processes are timed. bedspace is timed on 1 thread and on ``--threads`` threads (default: every available
core), from the BED files to the finished AnnData. After the timing, every bedtools output file is read and
compared with bedspace's matrix; the script fails if any differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's name shadows the standard library's `tokenize` when run as a script: drop its folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace._formats.bed import read_intervals  # noqa: E402


def bedtools(universe: Path, bed: Path, out: Path) -> None:
    """One `bedtools intersect -u` process, its output going straight to a file."""
    with open(out, "wb") as handle:
        subprocess.run(["bedtools", "intersect", "-u", "-a", str(universe), "-b", str(bed)], check=True, stdout=handle)


# A process's peak RSS starts at its parent's at exec (Linux), so bedtools is started from a small Python process
# for its memory to be its own; wait4 gives that one child's peak.
PEAK_RSS = (
    "import os, sys; pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], dict(os.environ), "
    "file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]); "
    "print(os.wait4(pid, 0)[2].ru_maxrss / 1024)"
)


def bedtools_peak_rss(universe: Path, bed: Path) -> float:
    """Peak RSS (MB) of one `bedtools intersect -u` process (not timed)."""
    command = ["bedtools", "intersect", "-u", "-a", str(universe), "-b", str(bed)]
    return float(subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True).stdout)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bedtools(universe: Path, files: list[Path], folder: Path, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds of the bedtools processes (1 or 2 at a time), outputs written into ``folder``."""
    folder.mkdir()
    jobs = [(universe, f, folder / f.name.replace(".bed.gz", ".txt")) for f in files]
    cpu, t0 = children_cpu(), time.perf_counter()
    if workers == 1:
        for job in jobs:
            bedtools(*job)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda job: bedtools(*job), jobs))
    return time.perf_counter() - t0, children_cpu() - cpu


def run_bedspace(files: list[Path], universe: Path, threads: int):
    cpu, t0 = time.process_time(), time.perf_counter()
    adata = bs.pp.tokenize(files, universe, n_jobs=threads)
    return adata, time.perf_counter() - t0, time.process_time() - cpu


def same_regions(adata, row: int, output: Path) -> bool:
    """Whether a bedtools output file lists exactly the universe regions of row ``row`` of the matrix, in order."""
    expected = adata.var.iloc[np.sort(adata.X[row].indices)]
    found = read_intervals(output)
    codes, names = found.chrom_codes()
    return (
        np.array_equal(found.starts, expected["start"].to_numpy())
        and np.array_equal(found.ends, expected["end"].to_numpy())
        and np.array_equal(np.asarray(names, dtype=object)[codes], expected["chrom"].astype(str).to_numpy())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--universe", default="consensus", choices=["consensus", "tiles_5kb"])
    parser.add_argument("--limit", type=int, default=None, help="only the first N DNase files")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="bedspace's threads")
    args = parser.parse_args()
    if shutil.which("bedtools") is None:
        sys.exit("bedtools is not installed (apt-get install bedtools)")
    version = subprocess.run(["bedtools", "--version"], capture_output=True, text=True).stdout.strip()

    data = bs.datasets.encode_hg19()
    metadata = pd.read_csv(data.metadata)
    names = metadata.loc[metadata["collection"] == "encode_awg_dnase", "file_name"].sort_values().tolist()
    files = [data.beds / name for name in names[: args.limit]]
    universe = data.universes[args.universe]
    print(f"{len(files)} ENCODE DNase files, universe {universe.name}; bedspace {bs.__version__}, {version}; {args}")
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine slows both)"
    )

    with tempfile.TemporaryDirectory(prefix="bedspace-tokenize-") as folder:
        work = Path(folder)
        # warm up: numba compilation and the page cache, for both tools
        run_bedspace(files[:2], universe, 1)
        run_bedtools(universe, files[:2], work / "warm", 1)

        timings = {}
        _, wall, cpu = run_bedspace(files, universe, 1)
        timings["bedspace", 1] = wall, cpu
        adata, wall, cpu = run_bedspace(files, universe, args.threads)
        timings["bedspace", args.threads] = wall, cpu
        rss_bedspace = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        timings["bedtools", 1] = run_bedtools(universe, files, work / "serial", 1)
        timings["bedtools", 2] = run_bedtools(universe, files, work / "parallel", 2)
        rss_bedtools = bedtools_peak_rss(universe, max(files, key=lambda f: f.stat().st_size))

        # the check, outside the timing: every output of both bedtools runs against bedspace's matrix
        identical = all(
            same_regions(adata, i, work / run / f.name.replace(".bed.gz", ".txt"))
            for run in ("serial", "parallel")
            for i, f in enumerate(files)
        )

    rows = [
        ("bedspace.pp.tokenize, 1 thread", "bedspace", 1),
        (f"bedspace.pp.tokenize, {args.threads} threads", "bedspace", args.threads),
        ("bedtools intersect -u, serial", "bedtools", 1),
        ("bedtools intersect -u, 2 at once", "bedtools", 2),
    ]
    print(f"\n{'tool':<36}{'cores':>6}{'wall s':>9}{'CPU s':>9}{'files/s':>9}{'bedtools/bedspace at equal cores':>34}")
    for label, tool, cores in rows:
        wall, cpu = timings[tool, cores]
        ratio = ""
        if tool == "bedtools" and ("bedspace", cores) in timings:
            ratio = f"{wall / timings['bedspace', cores][0]:.1f}x"
        print(f"{label:<36}{cores:>6}{wall:>9.2f}{cpu:>9.2f}{len(files) / wall:>9.1f}{ratio:>34}")
    print(f"\n{int(adata.X.nnz):,} tokens; every bedtools output identical to bedspace's matrix: {identical}")
    print(
        "timed: bedspace = reading the gzipped BED files, overlapping, building the AnnData (sets x regions, in\n"
        "memory); bedtools = the `bedtools intersect -u -a universe -b file` processes writing their output to\n"
        "files (reading those files back for the check is not timed). CPU s: bedspace = this process's CPU time\n"
        "during the call; bedtools = CPU time of the child processes."
    )
    print(
        f"peak RSS: bedspace {rss_bedspace:.0f} MB (this Python process, includes anndata, numba and the matrix); "
        f"bedtools {rss_bedtools:.0f} MB (one process, on the largest file)"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
