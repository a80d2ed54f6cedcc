"""Scale: tokenize, train, embed and search N synthetic region sets — time and peak memory against N.

    python benchmarks/scale.py [--sizes 1000 5000 20000] [--workdir /tmp/bedspace-scale] [--train-sets 2000]
                               [--full-train-max 5000] [--threads 2] [--plot docs/_static/scale.png]

The sets are **synthetic**: ``bs.datasets.perturb`` copies of the 172 hg19 sets (taken in turn), each with 10% of
its regions shifted (N(0, 150 bp)), 5% consensus-universe regions added and 5% of its regions dropped; labels
(organ, cell_class, assay) are the source's. For every N, each step runs in a fresh child process, so that its
peak RSS (``ru_maxrss`` from ``os.wait4``, through a small launcher process so that no parent's memory is
counted) is its own and the steps do not contaminate each other:

1. **tokenize**: ``bs.pp.tokenize(files, universe, metadata=..., out="collection_N.h5ad")``, out of core, on
   the 574,740-region consensus universe;
2. **train**: one epoch of ``bs.tl.train`` (built-in engine, dim 100) on the backed collection, twice: on every
   set (only up to ``--full-train-max`` sets: it needs the collection's tokens in memory) and on a stratified
   sample of ``--train-sets`` sets (``sample_sets=``, every set still embedded). The timed call includes
   reading the training sets from the file and embedding every set afterwards (step 3 times that alone);
3. **embed**: ``BEDSpaceModel.embed`` of every set of the backed collection, X read a chunk of rows at a time;
   its vectors are checked against those ``bs.tl.train`` wrote;
4. **query**: a real hg19 BED file, read with ``bs.io.read_bed`` before the timing, searched r2l and r2r with
   ``BEDSpaceModel.search`` (tokenizing and embedding the query included; best of 10 after one warm-up, which
   builds the universe's overlap index, timed apart as "first"), and an r2r search by a stored set's name
   (the part of a query that grows with N: a matrix product with the N set vectors and the top 10); each as it
   comes and with BLAS limited to one thread (``threadpoolctl``). The model of a backed collection carries no
   tokens of its sets, so r2l is the embedding's (label vectors), not the hybrid annotator.

Tokens per second: the step's tokens (every set's for tokenize and embed, the training sets' for train) over its
wall time. ``start MB`` is the child's RSS after its imports and before the step (Python, numpy, anndata,
numba): what any step pays.

Cost of the sets, made once and reused (in ``--workdir``: ``sets_M/``, M the largest N asked for; a smaller N
takes the first N files of any folder with at least N, which are the files ``perturb`` would make for N: set i
depends only on the seed and i). ``perturb`` writes them on every core, gzip level 1: on 2 cores (load
average ~3), 5,000 sets took 231 s and 4.4 GB, 20,000 took 873 s and 18 GB; the 20,000-set ``.h5ad`` is 8 GB. The tokenized collections (``collection_N.h5ad``) and the models (``model_N/``) are kept there
too; delete the folder when done. ``--replot`` redraws the tables and the plot from the output of earlier runs
(their last line), e.g. to put runs of different sizes in one figure.
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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
RATES = {"shift_rate": 0.1, "add_rate": 0.05, "drop_rate": 0.05}
SEED = 0
REPEAT = 10  # query timings: best of this many, after a first call
ROOT = Path(__file__).resolve().parent.parent

# A child's ru_maxrss starts at its parent's RSS when the parent's memory is shared up to exec (vfork,
# posix_spawn), so every step is started from this small launcher: its own peak is a few MB, and wait4 gives
# the step's.
LAUNCHER = (
    "import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], dict(os.environ)); "
    "_, status, usage = os.wait4(pid, 0); "
    "print('PEAK', usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), flush=True)"
)


def rss_mb() -> float:
    """Current resident memory (VmRSS) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the synthetic sets --------------------------------------------------------------------------------------


def sets_folder(workdir: Path, n: int, largest: int, threads: int) -> Path:
    """A folder holding at least ``n`` perturbed sets: an existing one, or a new one of ``largest`` sets."""
    done = sorted(
        (int(p.name.split("_")[1]), p)
        for p in workdir.glob("sets_*")
        if p.name.split("_")[1].isdigit() and (p / "metadata.csv").is_file()
    )
    for m, folder in done:
        if m >= n:
            return folder
    import bedspace as bs

    data = bs.datasets.encode_hg19()
    folder = workdir / f"sets_{largest}"
    print(f"making {largest:,} synthetic sets in {folder} (reused by later runs) ...", flush=True)
    t0 = time.perf_counter()
    bs.datasets.perturb(data, n_sets=largest, out_dir=folder, random_state=SEED, n_jobs=threads, **RATES)
    print(f"  {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def first_sets(folder: Path, n: int) -> pd.DataFrame:
    """Metadata of the first ``n`` sets of a perturbed folder (``file_name`` is the path)."""
    metadata = pd.read_csv(folder / "metadata.csv").iloc[:n].copy()
    metadata["file_name"] = [str(folder / name) for name in metadata["file_name"]]
    return metadata


# --- the steps, each in its own process ----------------------------------------------------------------------


def step(name: str, workdir: Path, n: int, options: dict, *, script: str = __file__) -> dict:
    """Run one step of ``script`` (``--child``) in a fresh process (through the launcher): its result and peak RSS."""
    command = [
        sys.executable, "-c", LAUNCHER, sys.executable, script,
        "--child", name, str(workdir), str(n), json.dumps(options),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    result = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    peak = next((x.split() for x in out.stdout.splitlines() if x.startswith("PEAK ")), None)
    if out.returncode != 0 or result is None or peak is None or peak[2] != "0":
        raise RuntimeError(f"step {name} at N={n} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return {**json.loads(result.removeprefix("RESULT ")), "peak_mb": float(peak[1])}


def child(name: str, workdir: Path, n: int, options: dict) -> None:
    import warnings

    import anndata as ad

    import bedspace as bs

    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    collection = workdir / f"collection_{n}.h5ad"
    model_dir = workdir / f"model_{n}"
    result: dict = {"rss_start": rss_mb()}
    if name == "tokenize":
        metadata = first_sets(Path(options["folder"]), n)
        files = [Path(p) for p in metadata["file_name"]]
        metadata["file_name"] = [p.name for p in files]
        t0 = time.perf_counter()
        adata = bs.pp.tokenize(files, options["universe"], metadata=metadata, out=collection, n_jobs=options["threads"])
        result["seconds"] = time.perf_counter() - t0
        result["tokens"] = int(adata.X.group["indptr"][-1])
    elif name == "train":
        adata = ad.read_h5ad(collection, backed="r")
        t0 = time.perf_counter()
        bs.tl.train(
            adata,
            labels=FIELDS,
            epochs=1,
            dim=100,
            n_threads=options["threads"],
            sample_sets=options["sample_sets"],
            random_state=SEED,
        )
        result["seconds"] = time.perf_counter() - t0
        in_training = adata.obs["bedspace_in_training"].to_numpy()
        result["train_sets"] = int(in_training.sum())
        result["tokens"] = int(np.diff(adata.X.group["indptr"][:])[in_training].sum())
        if options["save"]:
            bs.BEDSpaceModel.from_anndata(adata).save(model_dir, overwrite=True)
    elif name == "embed":
        model = bs.BEDSpaceModel.load(model_dir)
        adata = ad.read_h5ad(collection, backed="r")
        t0 = time.perf_counter()
        vectors = model.embed(adata)
        result["seconds"] = time.perf_counter() - t0
        result["tokens"] = int(adata.X.group["indptr"][-1])
        # the same vectors as bs.tl.train stored for every set (and saved with the model)
        result["max_diff"] = float(np.abs(vectors - model.set_vectors).max())
    elif name == "query":
        from threadpoolctl import threadpool_limits

        model = bs.BEDSpaceModel.load(model_dir)
        query = bs.io.read_bed(options["query"])  # reading the file is not timed
        stored = str(model.set_names[0])
        timings = {}
        # as it comes (BLAS on every core), then with BLAS on one thread: on a busy machine, waking BLAS threads
        # for one small matrix product costs more than the product
        for suffix, limit in (("", None), ("_blas1", 1)):
            with threadpool_limits(limits=limit, user_api="blas"):
                for kind, what, search_type in (
                    ("r2l", query, "r2l"),
                    ("r2r", query, "r2r"),
                    ("r2r_name", stored, "r2r"),
                ):
                    times = []
                    for _ in range(1 + REPEAT):  # the first builds the universe's overlap index (once per model)
                        t0 = time.perf_counter()
                        model.search(what, search_type=search_type, top_k=10)
                        times.append(time.perf_counter() - t0)
                    timings[kind + suffix] = 1000 * min(times[1:])
                    timings[kind + suffix + "_first"] = 1000 * times[0]
        result.update(timings, query_regions=len(query), query_file=Path(options["query"]).name)
    else:
        raise ValueError(name)
    print("RESULT", json.dumps(result), flush=True)


# --- the report ----------------------------------------------------------------------------------------------


def report(rows: list[dict], queries: list[dict]) -> None:
    """Print the steps' table and the queries' table."""
    print(
        f"\n{'N':>7}{'step':>24}{'sets':>7}{'tokens':>15}{'wall s':>9}{'M tokens/s':>11}{'peak MB':>9}{'start MB':>9}"
    )
    for row in rows:
        sets = row.get("train_sets", row["n"])
        print(
            f"{row['n']:>7,}{row['step']:>24}{sets:>7,}{row['tokens']:>15,}{row['seconds']:>9.1f}"
            f"{row['tokens'] / row['seconds'] / 1e6:>11.2f}{row['peak_mb']:>9,.0f}{row['rss_start']:>9,.0f}"
        )
    name = queries[0].get("query_file", "a real hg19 BED file")
    print(
        f"\nqueries: {name} ({queries[0]['query_regions']:,} regions), read before the timing; ms, best of "
        f"{REPEAT} after a first call\n(which builds the universe's overlap index). by name: a stored set's vector "
        "against the N others. 1 BLAS: the same\nwith BLAS limited to one thread (threadpoolctl)."
    )
    print(
        f"{'N':>7}{'r2l':>8}{'r2r':>8}{'r2r by name':>13}{'r2l 1 BLAS':>12}{'r2r 1 BLAS':>12}{'by name 1 BLAS':>16}"
        f"{'first r2l':>11}{'peak MB':>9}{'start MB':>9}"
    )
    for q in queries:
        blas1 = [q.get(k + "_blas1", float("nan")) for k in ("r2l", "r2r", "r2r_name")]
        print(
            f"{q['n']:>7,}{q['r2l']:>8.1f}{q['r2r']:>8.1f}{q['r2r_name']:>13.2f}{blas1[0]:>12.1f}{blas1[1]:>12.1f}"
            f"{blas1[2]:>16.2f}{q['r2l_first']:>11.0f}{q['peak_mb']:>9,.0f}{q['rss_start']:>9,.0f}"
        )
    checks = ", ".join(f"N={r['n']}: {r['max_diff']:.1e}" for r in rows if "max_diff" in r)
    print(
        "\ntrain: one epoch of bs.tl.train on the backed collection, dim 100; the time includes reading the "
        "training sets\nfrom the file and embedding every set (the embed row). embed: largest difference from the "
        f"vectors bs.tl.train\nstored: {checks}.\npeak MB: ru_maxrss of the step's own process; start MB: its RSS "
        "after imports, before the step."
    )


def plot(rows: list[dict], queries: list[dict], path: Path) -> None:
    """Time against tokens, query time against N, peak RSS against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, asked = pd.DataFrame(rows), pd.DataFrame(queries)
    # every step against the collection's tokens (a sampled training reads fewer, but embeds them all)
    tokenize = table[table["step"] == "tokenize"]
    table["collection"] = table["n"].map(dict(zip(tokenize["n"], tokenize["tokens"], strict=True)))
    fig, (times, searches, memory) = plt.subplots(1, 3, figsize=(14, 4.2))
    for label, part in table.groupby("step", sort=False):
        times.plot(part["collection"], part["seconds"], "o-", label=label)
        memory.plot(part["n"], part["peak_mb"] / 1024, "o-", label=label)
    memory.plot(asked["n"], asked["peak_mb"] / 1024, "o-", label="query")
    if len(tokenize):
        tokens = np.geomspace(tokenize["tokens"].min(), tokenize["tokens"].max(), 20)
        first = tokenize.iloc[0]
        times.plot(tokens, first["seconds"] * tokens / first["tokens"], ":", color="grey", label="∝ tokens")
    times.set(xscale="log", yscale="log", xlabel="tokens in the collection", ylabel="wall time (s)")
    times.set_title("tokenize, train (one epoch, then embedding every set), embed", fontsize=9)
    times.legend(fontsize=7)
    for column, label in (("r2r_name", "r2r, stored set's vector"), ("r2r", "r2r, BED intervals"),
                          ("r2l", "r2l, BED intervals")):  # fmt: skip
        line = searches.plot(asked["n"], asked[column], "o-", label=label)[0]
        if column + "_blas1" in asked:
            searches.plot(asked["n"], asked[column + "_blas1"], "s--", color=line.get_color(), label="  1 BLAS thread")
    searches.axhline(50, color="grey", ls="--", lw=1, label="50 ms target")
    searches.set(xscale="log", yscale="log", xlabel="region sets (N)", ylabel="one query (ms)")
    searches.set_title("search (reading the query file excluded)", fontsize=9)
    searches.legend(fontsize=7, loc="center right")
    memory.axhline(4, color="grey", ls="--", lw=1, label="4 GB target")
    memory.set(xscale="log", xlabel="region sets (N)", ylabel="peak RSS (GB)", ylim=(0, None))
    memory.set_title("peak RSS, each step in its own process", fontsize=9)
    memory.legend(fontsize=7, loc="upper left")
    for axis in (times, searches, memory):
        axis.grid(alpha=0.3, which="both")
    fig.suptitle("bedspace at scale: synthetic perturbed hg19 sets, 574,740-region consensus universe", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def replot(logs: list[Path], path: Path) -> None:
    """The tables and the plot again from the last line (the results) of earlier runs' output, merged."""
    rows, queries = [], []
    for log in logs:
        last = [x for x in log.read_text().splitlines() if x.startswith('{"rows"')][-1]
        results = json.loads(last)
        rows += [r for r in results["rows"] if not r["step"].startswith("query")]
        queries += results["queries"]
    rows.sort(key=lambda r: r["n"])  # stable: the steps stay in order within one N
    queries.sort(key=lambda q: q["n"])
    report(rows, queries)
    plot(rows, queries, path)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bedspace-scale")
    parser.add_argument("--train-sets", type=int, default=2000, help="the stratified sample trained on")
    parser.add_argument("--full-train-max", type=int, default=5000, help="train on every set up to this N")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "_static" / "scale.png")
    parser.add_argument("--replot", type=Path, nargs="+", help="redo the tables and plot from earlier runs' output")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replot:
        replot(args.replot, args.plot)
        return
    if args.child:
        name, workdir, n, options = args.child
        child(name, Path(workdir), int(n), json.loads(options))
        return
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1:
        sys.exit("--sizes must be positive")
    args.workdir.mkdir(parents=True, exist_ok=True)

    import bedspace as bs

    data = bs.datasets.encode_hg19()
    universe = str(data.universes["consensus"])
    query = sorted(data.beds.glob("*.bed.gz"))[0]
    print(
        f"sizes {sizes}; workdir {args.workdir}; {args.threads} threads; train sample {args.train_sets} sets; "
        f"bedspace {bs.__version__}; {len(os.sched_getaffinity(0))} cores; load average {load()}",
        flush=True,
    )

    rows: list[dict] = []
    queries: list[dict] = []
    for n in sizes:
        folder = sets_folder(args.workdir, n, sizes[-1], args.threads)
        (args.workdir / f"collection_{n}.h5ad").unlink(missing_ok=True)  # tokenize is timed from scratch
        common = {"threads": args.threads}
        result = step("tokenize", args.workdir, n, {**common, "universe": universe, "folder": str(folder)})
        rows.append({"n": n, "step": "tokenize", **result})
        print(f"N={n:,}: tokenize {result['seconds']:.1f} s, {result['tokens']:,} tokens", flush=True)
        if n <= args.full_train_max:
            result = step("train", args.workdir, n, {**common, "sample_sets": None, "save": False})
            rows.append({"n": n, "step": "train, every set", **result})
            print(f"  train (every set) {result['seconds']:.1f} s", flush=True)
        result = step("train", args.workdir, n, {**common, "sample_sets": args.train_sets, "save": True})
        rows.append({"n": n, "step": f"train, sample of {args.train_sets}", **result})
        print(f"  train (sample) {result['seconds']:.1f} s on {result['train_sets']} sets", flush=True)
        result = step("embed", args.workdir, n, common)
        rows.append({"n": n, "step": "embed", **result})
        print(f"  embed {result['seconds']:.1f} s", flush=True)
        result = step("query", args.workdir, n, {**common, "query": str(query)})
        queries.append({"n": n, **result})
        print(f"  query r2l {result['r2l']:.0f} ms, r2r {result['r2r']:.0f} ms", flush=True)

    report(rows, queries)
    print(f"load average at the end: {load()}")
    plot(rows, queries, args.plot)
    print(f"plot: {args.plot}")
    print(json.dumps({"rows": rows, "queries": queries}, default=float))


if __name__ == "__main__":
    main()
