"""Approximate search: exact r2r (a matrix product) against the inverted-file index, at 10⁴–10⁶ stored set vectors.

    python benchmarks/index.py [--max-sets 1000000] [--random-max-sets 100000] [--queries 100]

The stored vectors are **synthetic around real ones**: a model is trained on the real hg19 collection
(``bs.datasets.encode_hg19()``, consensus universe, 10 epochs, dim 100), and each of the N vectors is one of its
172 set vectors, drawn at random, plus Gaussian noise, normalised. The noise's length is half the median
distance from a real set vector to its nearest other one, so each real set gets a cloud of look-alikes (as
replicates and near-identical experiments would be) that stays nearer to it than to any other real set. The
queries are new draws of the same kind, not stored (as a BED file never seen is). Pure random unit vectors
(Gaussian, no neighbour structure at all) are the worst case of any index and are reported too, up to
``--random-max-sets``.

One side-by-side table, one row per kind and N: the index's build time (nothing is compiled: the first index
of a process costs what any other does), the bytes of the arrays the index holds, top-10 time for one query (best of 20) and for a batch of
100 (best of 5) — exact: ``scores_against`` + ``top_k``, what ``search`` runs; approximate:
``ApproximateIndex.query``, candidates re-scored exactly —, the number of one-query searches after which the
build has paid for itself, recall@10 (mean over the queries of the share of the exact top 10 that the
approximate top 10 holds), and one r2r search of a stored set by name through ``BEDSpaceModel.search`` (the
table included; best of 20), exact and approximate.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace._reference import ReferenceSets  # noqa: E402
from bedspace._similarity import scores_against, top_k, unit_rows  # noqa: E402


def best_of(func, repeat: int = 5) -> float:
    """Smallest wall time of ``repeat`` calls, in milliseconds (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def real_set_vectors() -> np.ndarray:
    """Unit set vectors of a model trained on the real hg19 collection (consensus universe, dim 100)."""
    data = bs.datasets.encode_hg19()
    adata = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    # one thread: the same vectors at every run (threads update the vectors in an order that varies)
    bs.tl.train(adata, labels=["organ", "cell_class", "assay"], epochs=10, random_state=0, n_threads=1, calibrate=False)
    return unit_rows(adata.obsm["X_bedspace"])


def around(real: np.ndarray, n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors, each a random real vector plus Gaussian noise of expected length ``noise``; and sources."""
    source = rng.integers(0, len(real), n)
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):  # in blocks: float64 noise for 10⁶ rows at once would be 800 MB
        stop = min(start + 100_000, n)
        block = rng.normal(scale=noise / np.sqrt(real.shape[1]), size=(stop - start, real.shape[1]))
        out[start:stop] = unit_rows(real[source[start:stop]] + block)
    return out, source


def random_unit(n: int, dim: int, rng) -> np.ndarray:
    return unit_rows(rng.standard_normal((n, dim), dtype=np.float32))


def model_of(vectors: np.ndarray, source: np.ndarray) -> bs.BEDSpaceModel:
    """A model whose reference sets are ``vectors`` (universe and labels are placeholders: r2r by name needs none)."""
    dim = vectors.shape[1]
    universe = pd.DataFrame({"chrom": pd.Categorical(["chr1"]), "start": [0], "end": [1]})
    labels = pd.DataFrame({"field": ["kind"], "value": ["any"]})
    sets = pd.DataFrame({"source": source}, index=[f"set{i}" for i in range(len(vectors))])
    ones = np.ones((1, dim), np.float32)
    return bs.BEDSpaceModel(universe, ones, labels, ones, reference=ReferenceSets(sets, vectors))


def measure(kind: str, vectors: np.ndarray, source: np.ndarray, queries: np.ndarray) -> dict:
    model = model_of(vectors, source)
    reference = model.reference
    stored = reference.unit_vectors
    t0 = time.perf_counter()
    index = reference.approximate_index  # built here, as on the first approximate search, then kept
    build = time.perf_counter() - t0
    one, batch = queries[:1], queries[:100]
    exact_one = best_of(lambda: top_k(scores_against(one, stored), 10), repeat=20)
    approx_one = best_of(lambda: index.query(one, 10), repeat=20)
    exact_batch = best_of(lambda: top_k(scores_against(batch, stored), 10))
    approx_batch = best_of(lambda: index.query(batch, 10))
    exact, _ = top_k(scores_against(queries, stored), 10)
    found, _ = index.query(queries, 10)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(found, exact, strict=True)])
    name = reference.names[0]
    search_exact = best_of(lambda: model.search(name, search_type="r2r", top_k=10), repeat=20)
    search_approx = best_of(lambda: model.search(name, search_type="r2r", top_k=10, approximate=True), repeat=20)
    saved = exact_one - approx_one
    return {
        "vectors": kind,
        "N": len(vectors),
        "build s": build,
        "index MB": index.nbytes / 2**20,
        "1q exact ms": exact_one,
        "1q approx ms": approx_one,
        "100q exact ms": exact_batch,
        "100q approx ms": approx_batch,
        "break-even queries": 1000 * build / saved if saved > 0 else float("inf"),
        "recall@10": recall,
        "search() exact ms": search_exact,
        "search() approx ms": search_approx,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-sets", type=int, default=1_000_000)
    parser.add_argument("--random-max-sets", type=int, default=100_000, help="largest N of the pure random case")
    parser.add_argument("--queries", type=int, default=100, help="queries for recall@10 (at least 100)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    rng = np.random.default_rng(0)
    start = time.perf_counter()

    real = real_set_vectors()
    gaps = np.sqrt(np.maximum(2 - 2 * np.sort(real @ real.T, axis=1)[:, -2], 0))  # to the nearest other set
    noise = 0.5 * float(np.median(gaps))

    rows = []
    n = 10_000
    while n <= args.max_sets:
        vectors, source = around(real, n, noise, rng)
        queries, _ = around(real, max(args.queries, 100), noise, rng)
        rows.append(measure("around real", vectors, source, queries))
        print(f"  done: around real, N = {n:,} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        if n <= args.random_max_sets:
            vectors = random_unit(n, real.shape[1], rng)
            queries = random_unit(max(args.queries, 100), real.shape[1], rng)
            rows.append(measure("pure random", vectors, np.zeros(n, int), queries))
            print(f"  done: pure random, N = {n:,} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        n *= 10

    table = pd.DataFrame(rows)
    print(
        f"{len(real)} real set vectors (hg19, consensus universe, dim {real.shape[1]}); noise length {noise:.3f} "
        f"(median distance to the nearest other real set {np.median(gaps):.3f}); {max(args.queries, 100)} queries "
        f"for recall; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    formats = {
        "N": "{:,}".format,
        "build s": "{:.1f}".format,
        "index MB": "{:.0f}".format,
        "break-even queries": "{:,.0f}".format,
        "recall@10": "{:.3f}".format,
    }
    with pd.option_context("display.width", 250):
        print(table.to_string(index=False, formatters=formats, float_format="{:.2f}".format))


if __name__ == "__main__":
    main()
