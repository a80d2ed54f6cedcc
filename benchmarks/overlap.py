"""Shared-region counts (the default annotator's and the overlap baselines' kernel): bedspace vs scipy's product.

    python benchmarks/overlap.py [--repeats 5] [--universe consensus]

On the real hg19 collection (172 sets) tokenized on one of its universes, ``overlap_counts`` (the shared
universe regions of every query and reference set, dense) against what it replaced, scipy's sparse product
``(reference @ query.T).T.toarray()``, on the same 0/1 CSR matrices, side by side in one run: the 172 sets
against themselves (the classifier's kernel), and a held-out quarter (43 sets) against the other 129 (one
block of queries). Both give identical counts (checked). Best of ``--repeats`` wall-clock times, each after
one untimed call (numba compiles once).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace.annotate._kernel import overlap_counts  # noqa: E402
from bedspace.annotate._tokens import binary_csr  # noqa: E402


def scipy_product(query, reference) -> np.ndarray:
    return np.asarray((reference @ query.T).T.toarray(), dtype=np.float64)


def best_time(function, query, reference, repeats: int) -> tuple[float, np.ndarray]:
    result = function(query, reference)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(query, reference)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--universe", default="consensus")
    args = parser.parse_args()
    data = bs.datasets.encode_hg19()
    adata = bs.pp.tokenize(data.beds, data.universes[args.universe], metadata=data.metadata)
    tokens = binary_csr(adata.X, name="collection")
    print(f"{tokens.shape[0]} sets on {tokens.shape[1]:,} {args.universe} regions, {tokens.nnz:,} tokens\n")
    held_out = np.random.default_rng(0).permutation(tokens.shape[0]) < tokens.shape[0] // 4
    cases = {
        "all × all": (tokens, tokens),
        f"{held_out.sum()} held out × {(~held_out).sum()}": (tokens[held_out], tokens[~held_out]),
    }
    rows = []
    for name, (query, reference) in cases.items():
        ours, counts = best_time(overlap_counts, query, reference, args.repeats)
        theirs, expected = best_time(scipy_product, query, reference, args.repeats)
        if not np.array_equal(counts, expected):
            raise AssertionError(f"{name}: the counts differ from scipy's product")
        rows.append((name, f"{counts.sum():,.0f}", f"{ours:.3f}", f"{theirs:.3f}", f"{theirs / ours:.1f}×"))
    table = pd.DataFrame(rows, columns=["case", "shared regions (sum)", "bedspace s", "scipy s", "speed-up"])
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
