"""Training: the built-in engine vs the StarSpace binary at equal cores — speed per epoch, held-out quality, memory.

    python benchmarks/train.py [--starspace /path/to/starspace] [--epochs 50] [--threads 2]

On the real hg19 collection: 25% of the sets are held out (stratified by organ); the consensus universe is
rebuilt from the training sets only (min 5 sets); every configuration trains on the same tokenized corpus with
labels organ, cell_class and assay (dim 100, lr 0.05, bedspace's other defaults) through the public
``bs.tl.train``, each in its own process:

* bedspace's engine with its default negatives (``exclude_positives=True``), on ``--threads`` threads;
* bedspace's engine configured as StarSpace (``exclude_positives=False``), on ``--threads`` threads and on 1;
* the StarSpace binary (``backend="starspace"``, ``-thread`` = ``--threads``), when one is given (``--starspace``
  or ``$BEDSPACE_STARSPACE``); without it, its row is skipped with a note.

StarSpace's ``-thread N`` runs N - 1 training threads (at least 1) and one more thread that renormalises
embeddings in a busy loop for the whole run: with ``-thread 2`` it trains on one thread and occupies two cores.

Speed is s/epoch = (time of an ``--epochs`` run - time of a 1-epoch run) / (epochs - 1), both through
``bs.tl.train``, so that reading the corpus, writing StarSpace's input file and reading its model cancel out for
both engines. Quality is r2l hit@1 on the held-out sets (``bs.tl.evaluate``, method ``bedspace``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
ENV_VAR = "BEDSPACE_STARSPACE"


def stratified_split(obs: pd.DataFrame, column: str, test_size: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out sets; classes with one member stay in training."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(obs), bool)
    for _, rows in obs.groupby(column, observed=True).indices.items():
        if len(rows) < 2:
            continue
        n = max(1, round(test_size * len(rows)))
        test[rng.choice(rows, n, replace=False)] = True
    return test


def find_starspace(given: str | None) -> Path | None:
    """The StarSpace executable (a file, or the folder holding ``starspace``), or None when there is none."""
    given = given or os.environ.get(ENV_VAR)
    if not given:
        return None
    path = Path(given).expanduser()
    path = path / "starspace" if path.is_dir() else path
    if path.is_file() and os.access(path, os.X_OK):
        return path
    found = shutil.which(given)
    return Path(found) if found else None


def rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a live process, in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ChildMemory:
    """Watch the peak RSS of this process's child processes (the StarSpace binary) while they run.

    ``getrusage(RUSAGE_CHILDREN)`` cannot be used: a child's peak starts at its parent's RSS when it is
    started, and the parent here holds the collection. VmHWM of the running child is its own.
    """

    def __init__(self, interval: float = 0.5):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(interval,), daemon=True)

    def _watch(self, interval: float) -> None:
        me = str(os.getpid())
        while not self._stop.wait(interval):
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[1] == me:  # the parent pid
                    self.peak = max(self.peak, rss_mb(stat.parent.name))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def child(h5ad: str, options: dict) -> None:
    """Train one configuration on the training sets of an .h5ad; print time, memory and held-out hit@1."""
    import anndata as ad

    import bedspace as bs

    adata = ad.read_h5ad(h5ad)
    train = adata[adata.obs["split"] == "train"].copy()
    held_out = adata[adata.obs["split"] == "test"].copy()
    del adata
    loaded = rss_mb()
    # the watcher only runs beside the binary, so that it costs the built-in engine nothing
    with ChildMemory() if options.get("backend") == "starspace" else contextlib.nullcontext() as starspace_memory:
        t0 = time.perf_counter()
        bs.tl.train(train, labels=FIELDS, **options)
        seconds = time.perf_counter() - t0
    peak = rss_mb()  # before the evaluation, which has its own needs
    table = bs.tl.evaluate(train, held_out, fields=FIELDS)
    hits = table[(table["search"] == "r2l") & (table["metric"] == "hit@1") & (table["method"] == "bedspace")]
    result = {
        "seconds": seconds,
        "rss_loaded": loaded,
        "rss_python": peak,
        "rss_starspace": starspace_memory.peak if starspace_memory is not None else 0.0,
        "hit@1": dict(zip(hits["field"], hits["value"].astype(float), strict=True)),
    }
    print("RESULT", json.dumps(result))


def run_child(h5ad: Path, options: dict) -> dict:
    command = [sys.executable, __file__, "--child", str(h5ad), json.dumps(options)]
    out = subprocess.run(command, capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"training failed: {options}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starspace", help=f"the StarSpace binary or its folder (default ${ENV_VAR})")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return
    if args.epochs < 2:
        sys.exit("--epochs must be at least 2 (s/epoch is measured against a 1-epoch run)")

    import bedspace as bs

    binary = find_starspace(args.starspace)
    data = bs.datasets.encode_hg19()
    metadata = pd.read_csv(data.metadata)
    test = stratified_split(metadata, "organ", 0.25, args.seed)
    train_files = [data.beds / n for n in metadata.loc[~test, "file_name"]]
    universe = bs.pp.consensus_universe(train_files, min_sets=5)
    adata = bs.pp.tokenize(data.beds, universe, metadata=data.metadata)
    adata.obs["split"] = np.where(adata.obs_names.isin(metadata.loc[test, "file_name"]), "test", "train")
    n_train = int((adata.obs["split"] == "train").sum())
    n_tokens = int(adata[adata.obs["split"] == "train"].X.nnz)
    print(
        f"{n_train} training sets ({n_tokens / 1e6:.1f} M region tokens), {adata.n_obs - n_train} held out; "
        f"universe {adata.n_vars:,} consensus regions of the training sets; {args.epochs} epochs; "
        f"bedspace {bs.__version__}; machine: {len(os.sched_getaffinity(0))} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )

    common = {"dim": 100, "lr": 0.05, "random_state": args.seed}
    configurations = [
        # (name, cores used, training threads, options)
        ("bedspace (default)", args.threads, args.threads,
         {"exclude_positives": True, "n_threads": args.threads}),
        ("bedspace, as StarSpace", args.threads, args.threads,
         {"exclude_positives": False, "n_threads": args.threads}),
        ("bedspace, as StarSpace", 1, 1, {"exclude_positives": False, "n_threads": 1}),
    ]  # fmt: skip
    if binary is not None:
        configurations.append(
            ("StarSpace binary", max(args.threads, 2), max(args.threads, 2) - 1,
             {"backend": "starspace", "starspace": str(binary), "exclude_positives": False,
              "n_threads": args.threads})
        )  # fmt: skip

    results = []
    with tempfile.TemporaryDirectory(prefix="bedspace-bench-") as folder:
        h5ad = Path(folder) / "collection.h5ad"
        adata.write_h5ad(h5ad)
        del adata
        # warm the numba cache so that compilation is not timed
        run_child(h5ad, {**common, "epochs": 1, "n_threads": 1})
        for name, cores, training_threads, options in configurations:
            full = run_child(h5ad, {**common, **options, "epochs": args.epochs})
            one = run_child(h5ad, {**common, **options, "epochs": 1})
            per_epoch = (full["seconds"] - one["seconds"]) / (args.epochs - 1)
            results.append((name, cores, training_threads, per_epoch, full))
            print(f"  {name}, {cores} cores: {per_epoch:.2f} s/epoch, {full['seconds']:.0f} s in all", flush=True)

    starspace = next((r for r in results if r[0] == "StarSpace binary"), None)
    print(
        f"\n{'engine':<24}{'cores':>6}{'train thr':>10}{'s/epoch':>9}{'StarSpace/this':>15}{'train s':>9}"
        f"{'RSS MB: loaded':>15}{'peak':>7}{'StarSpace':>10}" + "".join(f"{f:>11}" for f in FIELDS)
    )
    for name, cores, training_threads, per_epoch, full in results:
        ratio = f"{starspace[3] / per_epoch:.1f}x" if starspace else "-"
        memory = f"{full['rss_starspace']:>10.0f}" if full["rss_starspace"] else f"{'-':>10}"
        print(
            f"{name:<24}{cores:>6}{training_threads:>10}{per_epoch:>9.2f}{ratio:>15}{full['seconds']:>9.1f}"
            f"{full['rss_loaded']:>15.0f}{full['rss_python']:>7.0f}{memory}"
            + "".join(f"{full['hit@1'].get(f, float('nan')):>11.3f}" for f in FIELDS)
        )
    print(
        "\ncores: cores kept busy. StarSpace -thread 2 runs 1 training thread plus its norm thread, which "
        "renormalises\nembeddings in a busy loop: it occupies 2 cores and trains on 1. The like-for-like row is "
        f"'bedspace, as StarSpace' on {max(args.threads, 2)} cores\n(same cores, same negatives); the 1-core row "
        "compares training threads one to one.\n"
        "s/epoch: (time of the full run - time of a 1-epoch run) / (epochs - 1), both through bs.tl.train: "
        "loading,\nStarSpace's input file and model parsing cancel out. train s: the full bs.tl.train call.\n"
        "RSS MB: the Python process after loading the collection and at its peak (the built-in engine runs in it); "
        "StarSpace:\nthe binary's own peak, beside the Python process that started it. Last columns: r2l hit@1 "
        "on held-out sets.\nStarSpace has no seed and several threads make bedspace's engine nondeterministic: "
        "hit@1 varies by a few points\nfrom run to run."
    )
    if starspace is None:
        print(
            f"\nStarSpace rows skipped: no StarSpace binary (pass --starspace or set ${ENV_VAR}; it is built from "
            "facebookresearch/StarSpace with `make`)."
        )
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        json.dumps(
            {
                f"{name}, {cores} cores": {"s_per_epoch": per_epoch, "rss_mb": full["rss_python"], **full["hit@1"]}
                for name, cores, _, per_epoch, full in results
            }
        )
    )


if __name__ == "__main__":
    main()
