"""BEDbase scale: 10³ to 10⁵ region sets out of core — time and peak memory of every step, then on a dask cluster.

    python benchmarks/bedbase.py [--sizes 1000 10000 100000] [--keep 0.125] [--threads 2]
                                 [--workdir /tmp/bedspace-bedbase] [--plot docs/_static/bedbase.png]

The collections are **synthetic at the token level**, as ``benchmarks/annotate.py`` makes them, from the 172 real
hg19 sets tokenized on the 574,740-region consensus universe: set i is real set ``i mod 172`` with 5% of its
regions dropped and as many random universe regions added, then ``--keep`` of them kept at random (the real sets
average 82,000 regions; 12.5% makes 10⁵ sets about 10⁹ tokens). Labels organ, cell_class and assay are the
source's. Each step runs in a fresh child process (through a small launcher, so that its peak RSS from
``os.wait4`` is its own, as ``benchmarks/scale.py`` measures):

1. **write**: the collection written to ``collection_N.h5ad`` (anndata's CSR encoding, appended 2,000 sets at a
   time: the collection is never in memory) — what ``bs.pp.tokenize(..., out=...)`` leaves;
2. **train**: ``bs.tl.train`` of the backed collection with the defaults — the default annotator fitted on a
   sample of 2,000 sets and calibrated, its space written, every set embedded a chunk at a time — then the model
   saved as a folder (timed apart: it copies every set's tokens);
3. **embed**: ``BEDSpaceModel.embed`` of every set from the file, checked against the stored vectors;
4. **search**: the loaded model folder answering a real hg19 BED file: r2l (the annotator, its regions against
   the 2,000 fitted sets), r2r and l2r (the vectors: one product with the N set vectors); best of 5 after a
   first call;
5. **dask**: step 3 again with the collection embedded on a ``distributed.LocalCluster`` of ``--threads``
   single-threaded worker processes (each reads its rows from the file): the vectors must be identical to step
   3's, and the r2r table over them to the one over step 3's. Pointing it at a real cluster is ``docs/usage.md``'s
   "Large collections".

Prints one table (seconds, tokens per second, peak MB per step and N) and the query times, and draws time and
peak memory against N (``--plot``; ``--replot LOG`` redraws them from an earlier run's output). The collections and models stay in ``--workdir`` (10⁵ sets: about 5 GB of
``.h5ad`` and 2.5 GB of model folder); delete it when done.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
SEED = 0
REPEAT = 5
WRITE_SETS = 2000  # sets generated and appended at a time
ROOT = Path(__file__).resolve().parent.parent
STEPS = ("write", "train", "save", "embed", "search", "dask")


def sibling(name: str):
    """Another benchmark script of this folder as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step(name: str, workdir: Path, n: int, options: dict) -> dict:
    """Run one step in a fresh process, as ``benchmarks/scale.py`` runs its own: its result and peak RSS."""
    return {**sibling("scale").step(name, workdir, n, options, script=__file__), "step": name, "n": n}


def write_collection(path: Path, n: int, keep: float) -> int:
    """Write ``n`` synthetic sets to the ``.h5ad`` ``path``, ``WRITE_SETS`` at a time; their number of tokens."""
    import anndata as ad
    import h5py

    import bedspace as bs

    data = bs.datasets.encode_hg19()
    real = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    make = sibling("annotate").synthetic_collection
    rng = np.random.default_rng(SEED)
    obs = real.obs[FIELDS].iloc[np.arange(n) % real.n_obs].reset_index(drop=True)
    obs.index = [f"set_{i}" for i in range(n)]
    tmp = path.with_name(path.name + ".tmp")
    ad.AnnData(obs=obs, var=real.var).write_h5ad(tmp)
    with h5py.File(tmp, "a") as f:
        if "X" in f:  # anndata may write an empty X: replaced by the CSR group, appended to
            del f["X"]
        group = f.create_group("X")
        group.attrs["encoding-type"] = "csr_matrix"
        group.attrs["encoding-version"] = "0.1.0"
        group.attrs["shape"] = np.array([n, real.n_vars], dtype=np.int64)
        indptr = group.create_dataset("indptr", shape=(1,), dtype=np.int64, maxshape=(None,), data=[0])
        indices = group.create_dataset("indices", shape=(0,), dtype=np.int32, maxshape=(None,), chunks=(1 << 20,))
        values = group.create_dataset("data", shape=(0,), dtype=np.uint8, maxshape=(None,), chunks=(1 << 20,))
        for start in range(0, n, WRITE_SETS):
            stop = min(start + WRITE_SETS, n)
            part = make(real, stop - start, rng, keep=keep, first=start).X
            at, total = int(indptr[-1]), int(indptr[-1]) + part.nnz
            for dataset, array in ((indices, part.indices.astype(np.int32)), (values, np.ones(part.nnz, np.uint8))):
                dataset.resize((total,))
                dataset[at:total] = array
            indptr.resize((stop + 1,))
            indptr[start + 1 : stop + 1] = at + part.indptr[1:]
        tokens = int(indptr[-1])
    os.replace(tmp, path)
    return tokens


def child(name: str, workdir: Path, n: int, options: dict) -> None:
    import warnings

    import anndata as ad

    import bedspace as bs

    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    collection, model_dir = workdir / f"collection_{n}.h5ad", workdir / f"model_{n}"
    result: dict = {}
    start = time.perf_counter()
    if name == "write":
        result["tokens"] = write_collection(collection, n, options["keep"])
    elif name == "train":
        adata = ad.read_h5ad(collection, backed="r")
        bs.tl.train(adata, labels=FIELDS, n_threads=options["threads"])
        result["seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        bs.BEDSpaceModel.from_anndata(adata).save(model_dir, overwrite=True)
        result["save_seconds"] = time.perf_counter() - start
        result["tokens"] = int(adata.X.group["indptr"][-1])
        result["dim"] = int(adata.varm["bedspace"].shape[1])
    elif name == "embed":
        model = bs.BEDSpaceModel.load(model_dir)
        adata = ad.read_h5ad(collection, backed="r")
        vectors = model.embed(adata)
        result["seconds"] = time.perf_counter() - start
        result["tokens"] = int(adata.X.group["indptr"][-1])
        # as bs.tl.train stored them, but for the fitted sets' leave-one-out share (their label blocks)
        regions = model.space.blocks == model.space.weights.size - 1
        result["max_diff_regions_block"] = float(np.abs(vectors[:, regions] - model.set_vectors[:, regions]).max())
        np.save(workdir / f"vectors_{n}.npy", vectors)
    elif name == "search":
        model = bs.BEDSpaceModel.load(model_dir)
        query = bs.io.read_bed(options["query"])  # reading the file is not timed
        for kind, what in (("r2l", query), ("r2r", query), ("l2r", "organ=blood")):
            times = []
            for _ in range(1 + REPEAT):
                t0 = time.perf_counter()
                model.search(what, search_type=kind, top_k=10)
                times.append(time.perf_counter() - t0)
            result[f"{kind}_ms"] = 1000 * min(times[1:])
            result[f"{kind}_first_ms"] = 1000 * times[0]
        result["seconds"] = time.perf_counter() - start
    elif name == "dask":
        from distributed import Client, LocalCluster

        model = bs.BEDSpaceModel.load(model_dir)
        with (
            LocalCluster(n_workers=options["threads"], threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            start = time.perf_counter()
            vectors = model.embed(ad.read_h5ad(collection, backed="r"), n_jobs=client)
            result["seconds"] = time.perf_counter() - start
        here = np.load(workdir / f"vectors_{n}.npy")
        result["identical_vectors"] = bool(np.array_equal(vectors, here))
        # r2r over the sets as embedded on the cluster and as embedded here: the same table
        query, reference, tables = bs.io.read_bed(options["query"]), model.reference, []
        for embedded in (vectors, here):
            model._attach(type(reference)(reference.metadata, embedded, reference.tokens, annotator=model.annotator))
            tables.append(model.search(query, search_type="r2r", top_k=10))
        result["identical_r2r"] = bool(tables[0].equals(tables[1]))
        result["tokens"] = int(ad.read_h5ad(collection, backed="r").X.group["indptr"][-1])
    else:
        raise ValueError(name)
    result.setdefault("seconds", time.perf_counter() - start)
    print("RESULT", json.dumps(result), flush=True)


def report(rows: list[dict]) -> None:
    print(f"\n{'N':>8}{'step':>8}{'tokens':>16}{'wall s':>9}{'M tokens/s':>12}{'peak MB':>9}")
    for r in rows:
        rate = r["tokens"] / r["seconds"] / 1e6 if r.get("tokens") else float("nan")
        print(
            f"{r['n']:>8,}{r['step']:>8}{r.get('tokens', 0):>16,}{r['seconds']:>9.1f}{rate:>12.2f}{r['peak_mb']:>9,.0f}"
        )
        if r["step"] == "train":
            print(f"{'':>8}{'save':>8}{'':>16}{r['save_seconds']:>9.1f}  (the model folder, within train's peak)")
    print(f"\n{'N':>8}{'r2l ms':>9}{'r2r ms':>9}{'l2r ms':>9}   (best of {REPEAT}; first call in brackets)")
    for r in rows:
        if r["step"] == "search":
            print(
                f"{r['n']:>8,}{r['r2l_ms']:>9.0f}{r['r2r_ms']:>9.1f}{r['l2r_ms']:>9.1f}   "
                f"({r['r2l_first_ms']:.0f}, {r['r2r_first_ms']:.0f}, {r['l2r_first_ms']:.0f})"
            )
    for r in rows:
        if r["step"] == "dask":
            print(
                f"N={r['n']:,} on the dask cluster: vectors identical {r['identical_vectors']}, r2r identical "
                f"{r['identical_r2r']} ({r['seconds']:.1f} s to embed)"
            )
    print("ROWS " + json.dumps(rows))


def plot(rows: list[dict], path: Path) -> None:
    """Time and peak memory of every step against the collection's tokens, and the queries' time against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4))
    labels = {"dask": "embed on dask (2 workers)", "train": "train (default space, calibrated)"}
    for name in ("write", "train", "embed", "dask"):
        chosen = [r for r in rows if r["step"] == name]
        tokens = [r["tokens"] for r in chosen]
        left.plot(tokens, [r["seconds"] for r in chosen], "o-", label=labels.get(name, name))
        middle.plot(tokens, [r["peak_mb"] / 1024 for r in chosen], "o-", label=labels.get(name, name))
    searches = [r for r in rows if r["step"] == "search"]
    for kind in ("r2l", "r2r", "l2r"):
        right.plot([r["n"] for r in searches], [r[f"{kind}_ms"] for r in searches], "o-", label=kind)
    right.axhline(1000, color="grey", linestyle=":", linewidth=1, label="r2l target (1 s)")
    right.axhline(100, color="grey", linestyle="--", linewidth=1, label="r2r, l2r target (100 ms)")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    middle.set_xscale("log")
    middle.set_ylim(0, 9)
    middle.grid(True, which="both", alpha=0.3)
    middle.axhline(8, color="grey", linestyle="--", linewidth=1)
    middle.text(middle.get_xlim()[0], 8.15, " 8 GB", color="grey", fontsize=8)
    left.set(xlabel="tokens in the collection", ylabel="wall time (s)", title="every step, out of core")
    middle.set(xlabel="tokens in the collection", ylabel="peak memory (GB)", title="peak memory of each step")
    right.set(
        xlabel="sets in the collection", ylabel="ms per query (best of 5)", title="one query, from a model folder"
    )
    right.set_ylim(5, 3000)
    left.legend(fontsize=8)
    middle.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--keep", type=float, default=0.125)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bedspace-bedbase")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "_static" / "bedbase.png")
    parser.add_argument("--replot", type=Path, help="redo the tables and plot from an earlier run's output")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replot:
        line = next(x for x in args.replot.read_text().splitlines() if x.startswith("ROWS "))
        rows = json.loads(line.removeprefix("ROWS "))
        report(rows)
        plot(rows, args.plot)
        return
    if args.child:
        name, workdir, n, options = args.child
        child(name, Path(workdir), int(n), json.loads(options))
        return
    import bedspace as bs

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = bs.datasets.encode_hg19()
    query = str(data.beds / sorted(p.name for p in data.beds.iterdir())[0])
    options = {"keep": args.keep, "threads": args.threads, "query": query}
    print(f"query: {Path(query).name}; {args.threads} threads; load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for n in args.sizes:
        for name in ("write", "train", "embed", "search", "dask"):
            rows.append(row := step(name, args.workdir, n, options))
            print(f"N={n:,} {name}: {row['seconds']:.1f} s, peak {row['peak_mb']:,.0f} MB", flush=True)
    report(rows)
    plot(rows, args.plot)


if __name__ == "__main__":
    main()
