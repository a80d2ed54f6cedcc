"""The default annotator on large collections: time and memory of its calibration and of one r2l query.

    python benchmarks/annotate.py [--sizes 1000 2500 5000 10000] [--threads 2]

The default r2l annotator (a kernel ridge classifier on the sets' region overlap) compares a query's universe
regions with the sets it is fitted on (all labelled sets up to 2,000, a sample of 2,000 beyond), read in place
from the collection's tokens, so it needs those tokens in memory; what it should not need is more: no dense
sets × sets matrix (10,000 sets: 800 MB, 10⁵: 80 GB), no second copy of the tokens, and past 2,000 sets no
time that grows with the collection. This script measures, for collections of N sets held in memory as ``bs.pp.tokenize`` makes them (float32 CSR), the memory
``bs.tl.calibrate`` and ``bs.tl.search(..., search_type="r2l")`` take beyond what the process held before the
call, beside the size of the collection's own sparse matrix.

The collections are **synthetic**, made at the token level from the 172 real hg19 sets on the 574,740-region
consensus universe: set i is real set ``i mod 172`` with 5% of its regions dropped and as many random universe
regions added (labels organ, cell_class and assay inherited). Each N runs in a fresh process: build the
collection, train one epoch on every set (``calibrate=False``; calibration reads the trained record, the
embedding does not matter to it), then

* **calibrate**: ``bs.tl.calibrate(adata)`` — the classifier fitted on at most 2,000 sets (``MAX_FITTED_SETS``,
  one sample for every field), leave-one-out annotations of at most 2,000 sets (``MAX_QUERIES``) against the
  fitted sets, read from the collection's matrix in place; the classifier is kept in ``adata.uns``;
* **r2l**: ``bs.tl.search(adata, path, search_type="r2l")`` of a real hg19 BED file, tokenizing included: the
  first call, which checks the kept classifier against the sets (it is not refitted) and builds the universe's
  overlap index, and the best of 3 after it.

"Extra MB" is the process's peak resident memory during the call (``VmHWM`` after resetting it through
``/proc/self/clear_refs``: Linux only) minus its resident memory just before: what the call adds on top of the
collection. Times are wall seconds on ``--threads`` cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
RATE = 0.05  # share of a set's regions dropped, and of random universe regions added
SEED = 0


def status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (this script needs Linux)")


def measured(call):
    """``call()``'s result, wall seconds and the peak memory it added to what the process held before (MB)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = status_mb("VmRSS")
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    return result, seconds, status_mb("VmHWM") - before


def synthetic_collection(real, n: int, rng: np.random.Generator, *, keep: float = 1.0, first: int = 0):
    """``n`` sets: real set ``i mod n_real`` with ``RATE`` of its regions dropped and as many random ones added.

    ``keep`` < 1: a set keeps that share of those regions, at random (a smaller collection of the same kinds).
    ``first``: the sets are those numbered ``first`` to ``first + n - 1`` (a collection made a part at a time).
    """
    import anndata as ad

    X = real.X.tocsr()
    n_real, n_regions = X.shape
    indptr, chunks = [0], []
    for i in range(first, first + n):
        own = X.indices[X.indptr[i % n_real] : X.indptr[i % n_real + 1]]
        kept = own[rng.random(own.size) >= 1 - keep * (1 - RATE)]  # keep=1: the same draws as ever
        added = rng.integers(0, n_regions, size=round(keep * RATE * own.size))
        regions = np.unique(np.concatenate([kept, added])).astype(np.int32)
        chunks.append(regions)
        indptr.append(indptr[-1] + regions.size)
    indices = np.concatenate(chunks)
    del chunks
    tokens = sp.csr_matrix(
        (np.ones(indices.size, np.float32), indices, np.asarray(indptr, np.int64)), shape=(n, n_regions)
    )
    obs = real.obs[FIELDS].iloc[np.arange(first, first + n) % n_real].reset_index(drop=True)
    obs.index = [f"set_{i}" for i in range(first, first + n)]
    return ad.AnnData(tokens, obs=obs, var=real.var)


def child(n: int, threads: int) -> None:
    import warnings

    import bedspace as bs

    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    data = bs.datasets.encode_hg19()
    real = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    query = data.beds / real.obs_names[0]
    truth = {f: str(real.obs[f].iloc[0]) for f in FIELDS}
    adata = synthetic_collection(real, n, np.random.default_rng(SEED))
    del real
    matrix_mb = (adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes) / 2**20
    start = time.perf_counter()
    bs.tl.train(adata, labels=FIELDS, epochs=1, n_threads=threads, calibrate=False, random_state=SEED)
    train_s = time.perf_counter() - start
    _, calibrate_s, calibrate_mb = measured(lambda: bs.tl.calibrate(adata))
    answer, first_s, first_mb = measured(lambda: bs.tl.search(adata, query, search_type="r2l"))
    repeats = [measured(lambda: bs.tl.search(adata, query, search_type="r2l")) for _ in range(3)]
    top = answer[answer["rank"] == 1].set_index("field")
    result = {
        "n": n,
        "tokens": int(adata.X.nnz),
        "matrix_mb": matrix_mb,
        "dense_mb": n * n * 8 / 2**20,
        "train_s": train_s,
        "calibrate_s": calibrate_s,
        "calibrate_mb": calibrate_mb,
        "r2l_first_s": first_s,
        "r2l_first_mb": first_mb,
        "r2l_s": min(r[1] for r in repeats),
        "r2l_mb": max(r[2] for r in repeats),
        "answer": {f: [str(top.loc[f, "value"]), float(top.loc[f, "probability"])] for f in FIELDS},
        "truth": truth,
    }
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.threads)
        return
    environment = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads))
    print(f"default annotator, {args.threads} threads; MB beyond what the process held before the call\n")
    print(
        f"{'sets':>7}{'tokens':>15}{'matrix MB':>11}{'dense N×N MB':>14}{'calibrate s':>13}{'extra MB':>10}"
        f"{'r2l first s':>13}{'extra MB':>10}{'r2l s':>8}{'extra MB':>10}",
        flush=True,
    )
    rows = []
    for n in args.sizes:
        command = [sys.executable, __file__, "--child", str(n), "--threads", str(args.threads)]
        out = subprocess.run(command, capture_output=True, text=True, env=environment)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"N={n} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
        rows.append(r := json.loads(line.removeprefix("RESULT ")))
        print(
            f"{r['n']:>7,}{r['tokens']:>15,}{r['matrix_mb']:>11,.0f}{r['dense_mb']:>14,.0f}{r['calibrate_s']:>13.1f}"
            f"{r['calibrate_mb']:>10,.0f}{r['r2l_first_s']:>13.2f}{r['r2l_first_mb']:>10,.0f}{r['r2l_s']:>8.2f}"
            f"{r['r2l_mb']:>10,.0f}",
            flush=True,
        )
    last = rows[-1]
    answers = ", ".join(f"{f} {v} ({p:.2f}; truth {last['truth'][f]})" for f, (v, p) in last["answer"].items())
    print(f"\nquery's answer at N={last['n']:,}: {answers}")
    print(
        f"largest extra memory over the sizes: calibrate {max(r['calibrate_mb'] for r in rows):,.0f} MB, "
        f"r2l {max(max(r['r2l_first_mb'], r['r2l_mb']) for r in rows):,.0f} MB; the largest collection's own matrix: "
        f"{last['matrix_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
