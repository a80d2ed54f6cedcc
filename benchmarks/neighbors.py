"""The sets' neighbour graph: ``bs.tl.distances`` (numpy) against ``scanpy.pp.neighbors``, each in a new process.

    python benchmarks/neighbors.py [--sizes 171 1000 4000 20000 50000]

``bs.tl.distances`` builds the graph scanpy's ``pp.neighbors(metric="cosine")`` builds — exact nearest
neighbours, UMAP's connectivities — in numpy (``bedspace._neighbors``); scanpy computes the connectivities with
umap's numba functions, compiled in every new Python process. Each graph is built here in a process of its own,
as a notebook's or a command's first graph is, and the table gives, per number of sets: the wall time of the
graph alone (after the imports), the process's whole wall time (Python's start and the imports included), and
the share of each set's neighbours the two graphs have in common and the largest difference between their
distances and connectivities (a neighbour found by one graph only counts whole). The set vectors are the default
space's vectors of the bundled hg19 slice (171 sets) and, for more sets, those vectors plus Gaussian noise of a
quarter of their median distance to the nearest other set, normalised (a cloud of look-alikes around each set).
n_neighbors is ``bs.tl.distances``'s default: every pair up to 2,000 sets, else 15.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import sparse  # noqa: E402

BUILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np, anndata as ad, scipy.sparse as sp
import bedspace as bs
import scanpy as sc
vectors = np.load(sys.argv[2])
adata = ad.AnnData(np.zeros((len(vectors), 1), np.float32))
adata.obsm["X_bedspace"] = vectors
k = len(vectors) if len(vectors) <= 2000 else 15
t1 = time.perf_counter()
if sys.argv[1] == "bedspace":  # what bs.tl.distances calls, with its default k
    from bedspace._neighbors import distance_matrix, nearest, umap_connectivities
    indices, distances = nearest(vectors, k)
    d, c = distance_matrix(indices, distances), umap_connectivities(indices, distances)
else:
    sc.pp.neighbors(adata, n_neighbors=k, use_rep="X_bedspace", metric="cosine", random_state=0)
    d, c = adata.obsp["distances"], adata.obsp["connectivities"]
t2 = time.perf_counter()
sp.save_npz(sys.argv[3] + "_d.npz", sp.csr_matrix(d))
sp.save_npz(sys.argv[3] + "_c.npz", sp.csr_matrix(c))
print(json.dumps({"graph": t2 - t1, "imports": t1 - t0}))
"""


def slice_vectors() -> np.ndarray:
    import bedspace as bs
    from bedspace._similarity import unit_rows

    data = bs.datasets.encode_hg19_chr21_22()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    bs.tl.train(adata, labels=["organ", "cell_class", "assay"])
    return unit_rows(adata.obsm["X_bedspace"])


def around(real: np.ndarray, n: int, rng) -> np.ndarray:
    from bedspace._similarity import unit_rows

    if n <= len(real):
        return real[:n]
    gaps = np.sqrt(np.maximum(2 - 2 * np.sort(real @ real.T, axis=1)[:, -2], 0))
    noise = 0.25 * float(np.median(gaps)) / np.sqrt(real.shape[1])
    return unit_rows(real[rng.integers(0, len(real), n)] + rng.normal(scale=noise, size=(n, real.shape[1])))


def build(how: str, vectors_file: Path, out: Path) -> dict:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", BUILD, how, str(vectors_file), str(out)], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1][:80], "process": wall}
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"process": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[171, 1000, 4000, 20000, 50000])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    real = slice_vectors()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            vectors_file = Path(tmp) / f"v{n}.npy"
            np.save(vectors_file, around(real, n, rng))
            row = {"sets": n}
            for how in ("bedspace", "scanpy"):
                result = build(how, vectors_file, Path(tmp) / f"{how}{n}")
                row[f"{how} graph s"] = result.get("graph", np.nan)
                row[f"{how} process s"] = result["process"]
                if "error" in result:
                    row["scanpy error"] = result["error"]
            if "scanpy error" not in row:
                graphs = {
                    (how, part): sparse.load_npz(Path(tmp) / f"{how}{n}_{part}.npz")
                    for how in ("bedspace", "scanpy")
                    for part in ("d", "c")
                }
                ours, theirs = graphs["bedspace", "d"], graphs["scanpy", "d"]
                shared = [
                    len(np.intersect1d(ours[i].indices, theirs[i].indices)) / max(ours[i].nnz, 1) for i in range(n)
                ]
                row["neighbours in common"] = float(np.mean(shared))
                row["max diff distances"] = abs(ours - theirs).max()
                row["max diff connectivities"] = abs(graphs["bedspace", "c"] - graphs["scanpy", "c"]).max()
            rows.append(row)
            print(f"  done: {n:,} sets", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; each graph built in a new process")
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        table = pd.DataFrame(rows)
        formats = {"neighbours in common": "{:.5f}".format}
        print(table.to_string(index=False, float_format="{:.3g}".format, formatters=formats))


if __name__ == "__main__":
    main()
