"""Answers from vectors at 20,000 sets: r2r, l2r and r2l in the default space against the annotator's way.

    python benchmarks/joint.py [--sets 20000] [--keep 0.2] [--threads 2]

The default space of ``bs.tl.train`` (the annotator's label scores as vectors: ``bedspace/_space.py``) answers
r2r and l2r from one vector per set. This script measures what that costs beside the way that compares regions
(``method="regions"``: r2r adds the probability that a stored set shares the query's labels, from annotating the
query against the fitted sets; l2r ranks by every stored set's leave-one-out annotation), on one collection of
``--sets`` sets held in memory, side by side in one run.

The collection is **synthetic**, made at the token level from the 172 real hg19 sets on the 574,740-region
consensus universe as ``benchmarks/annotate.py`` makes its collections: set i is real set ``i mod 172`` with 5% of
its regions dropped and as many random universe regions added, then ``--keep`` of those kept at random (the real
sets average 82,000 regions: 20,000 whole copies would be 1.6 × 10⁹ tokens, 13 GB in memory; 20% keeps the kinds
of set at a fifth of the size). Labels organ, cell_class and assay are the source's. Trained with the defaults.

The queries are real: a held-out-sized hg19 BED file (the collection's first set's file, whole), as a path
(read, tokenized and embedded: what ``bs.tl.search(adata, "peaks.bed")`` costs) and already tokenized (an
AnnData of the one set: the search alone). Times are the best of 5 calls after a first one (which builds the
universe's overlap index and, for l2r by regions, annotates every stored set once: timed apart).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace._search import default_method  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
SEED = 0
REPEAT = 5


def annotate_benchmark():
    """``benchmarks/annotate.py`` as a module: its synthetic collections."""
    spec = importlib.util.spec_from_file_location("annotate_benchmark", Path(__file__).with_name("annotate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(call) -> tuple[float, float]:
    """``(first call, best of REPEAT after it)`` in milliseconds."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * first, 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=20000)
    parser.add_argument("--keep", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    data = bs.datasets.encode_hg19()
    real = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    path = data.beds / real.obs_names[0]
    tokenized = real[:1].copy()
    start = time.perf_counter()
    adata = annotate_benchmark().synthetic_collection(real, args.sets, np.random.default_rng(SEED), keep=args.keep)
    made = time.perf_counter() - start
    start = time.perf_counter()
    bs.tl.train(adata, labels=FIELDS, n_threads=args.threads)
    trained = time.perf_counter() - start
    print(
        f"{adata.n_obs:,} synthetic sets, {adata.X.nnz:,} tokens (made in {made:.0f} s); trained with the defaults "
        f"in {trained:.0f} s ({adata.varm['bedspace'].shape[1]} dimensions, annotator calibrated)\n"
    )
    model = bs.BEDSpaceModel.from_anndata(adata)
    rows = []
    for search, query in (("r2r", path), ("r2r", tokenized), ("l2r", "organ=blood"), ("r2l", path)):
        methods = ("embedding", "regions") if search != "r2l" else ("regions", "embedding")
        for method in methods:
            first, best = timed(lambda q=query, s=search, m=method: bs.tl.search(adata, q, search_type=s, method=m))
            default = method == default_method(model, search)
            rows.append(
                {
                    "search": search,
                    "query": "BED path" if isinstance(query, Path) else "tokenized" if search != "l2r" else query,
                    "method": f"{method}{' (default)' if default else ''}",
                    "first ms": first,
                    "best ms": best,
                }
            )
    table = pd.DataFrame(rows)
    print(table.round(1).to_string(index=False))
    for (search, query), part in table.groupby(["search", "query"], sort=False):
        slow, fast = part["best ms"].max(), part["best ms"].min()
        print(f"{search} ({query}): {slow / fast:.0f}× between the two ways")


if __name__ == "__main__":
    main()
