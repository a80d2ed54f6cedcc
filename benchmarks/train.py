"""Training: the built-in engine vs the StarSpace binary — speed per epoch, held-out quality, peak memory.

    python benchmarks/train.py --starspace /path/to/starspace [--epochs 50] [--threads 2]

On the real hg19 collection: 25% of the sets are held out (stratified by organ); the consensus universe is
rebuilt from the training sets only (min 5 sets); both engines train on the same tokenized corpus with labels
organ, cell_class and assay (dim 100, lr 0.05, negSearchLimit 5, 2 threads). Each engine runs in its own
process so its peak RSS is its own; the native process loads the tokenized collection from an .h5ad, StarSpace
reads its training file. Quality is r2l hit@1 on the held-out sets: the share whose true label is the most
similar label of its field.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
RSS_WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "code = subprocess.run(sys.argv[1:]).returncode; wall = time.perf_counter() - t; "
    "print('RSS_MB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'WALL', wall, 'CODE', code)"
)


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


def measured(command: list[str]) -> tuple[float, float, str]:
    """Run a command in a wrapper that reports its peak RSS (MB) and wall time; returns (rss, wall, output)."""
    out = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *command], capture_output=True, text=True)
    match = re.search(r"RSS_MB (\S+) WALL (\S+) CODE (\S+)", out.stdout)
    if not match or match.group(3) != "0":
        raise RuntimeError(f"{command[0]} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return float(match.group(1)), float(match.group(2)), out.stdout + out.stderr


def native_child(h5ad: str, out: str, epochs: int, threads: int, exclude: bool) -> None:
    """Train with the built-in engine on the training sets of an .h5ad; report training time."""
    import anndata as ad

    import bedspace as bs

    adata = ad.read_h5ad(h5ad)
    train = adata[adata.obs["split"] == "train"].copy()
    t0 = time.perf_counter()
    bs.tl.train(train, labels=FIELDS, epochs=epochs, n_threads=threads, exclude_positives=exclude)
    seconds = time.perf_counter() - t0
    np.savez(out, regions=train.varm["bedspace"], labels=train.uns["bedspace"]["label_vectors"])
    train.uns["bedspace"]["labels"].to_csv(out + ".labels.tsv", sep="\t")
    print("TRAIN_SECONDS", seconds)


def hit_at_1(set_vectors: np.ndarray, obs: pd.DataFrame, labels: pd.DataFrame, label_vectors: np.ndarray) -> dict:
    norms = np.linalg.norm(label_vectors, axis=1, keepdims=True)
    unit = np.divide(label_vectors, norms, out=np.zeros_like(label_vectors), where=norms > 0)
    scores = set_vectors @ unit.T
    result = {}
    for field in FIELDS:
        in_field = np.flatnonzero(labels["field"].to_numpy() == field)
        values = labels["value"].to_numpy()[in_field]
        truth = obs[field].astype(str).to_numpy()
        known = np.isin(truth, values)
        predicted = values[scores[:, in_field].argmax(axis=1)]
        result[field] = float((predicted[known] == truth[known]).mean())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starspace", required=True, help="the StarSpace binary (or its folder)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-native", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_native:
        h5ad, out, epochs, threads, exclude = args.child_native
        native_child(h5ad, out, int(epochs), int(threads), exclude == "1")
        return

    import bedspace as bs
    from bedspace._engine import starspace as starspace_engine

    binary = starspace_engine.find_binary(args.starspace)
    data = bs.datasets.encode_hg19()
    metadata = pd.read_csv(data.metadata)
    test = stratified_split(metadata, "organ", 0.25, args.seed)
    train_files = [data.beds / n for n in metadata.loc[~test, "file_name"]]
    with tempfile.TemporaryDirectory(prefix="bedspace-bench-") as folder:
        run(args, binary, data, metadata, test, train_files, Path(folder))


def run(args, binary, data, metadata, test, train_files, work: Path) -> None:
    """Prepare the corpus in ``work``, train both engines, print the comparison."""
    import bedspace as bs
    from bedspace._engine import native
    from bedspace._engine import starspace as starspace_engine
    from bedspace._formats.starspace import vectors_from_symbols

    universe = bs.pp.consensus_universe(train_files, min_sets=5)
    adata = bs.pp.tokenize(data.beds, universe, metadata=data.metadata)
    adata.obs["split"] = np.where(adata.obs_names.isin(metadata.loc[test, "file_name"]), "test", "train")
    adata.write_h5ad(work / "collection.h5ad")
    train = adata[adata.obs["split"] == "train"].copy()
    held_out = adata[adata.obs["split"] == "test"].copy()
    train_file = bs.io.write_starspace(train, work / "train.txt", labels=FIELDS)
    n_tokens = int(train.X.nnz)
    print(
        f"{train.n_obs} training sets ({n_tokens / 1e6:.1f} M region tokens), {held_out.n_obs} held out; "
        f"universe {adata.n_vars:,} consensus regions of the training sets; {args.epochs} epochs, "
        f"{args.threads} threads\n"
    )

    # warm the numba cache so compilation is not timed
    subprocess.run(
        [sys.executable, __file__, "--starspace", str(binary), "--child-native", str(work / "collection.h5ad"),
         str(work / "warm"), "1", "1", "1"], capture_output=True, check=True,
    )  # fmt: skip

    results = {}
    for name, exclude in (("native", "1"), ("native, StarSpace negatives", "0")):
        out = str(work / f"native{exclude}")
        rss, wall, output = measured(
            [sys.executable, __file__, "--starspace", str(binary), "--child-native", str(work / "collection.h5ad"),
             out, str(args.epochs), str(args.threads), exclude]
        )  # fmt: skip
        seconds = float(re.search(r"TRAIN_SECONDS (\S+)", output).group(1))
        vectors = np.load(out + ".npz")
        labels = pd.read_csv(out + ".labels.tsv", sep="\t", index_col=0, keep_default_na=False)
        X = held_out.X
        sets = native.set_vectors(vectors["regions"], X.indptr.astype(np.int64), X.indices)
        results[name] = (seconds, wall, rss, hit_at_1(sets, held_out.obs, labels, vectors["labels"]))

    params = native.Hyperparameters(epochs=args.epochs)
    command = [str(binary), *starspace_engine.train_arguments(train_file, work / "ss_model", params, args.threads)]
    rss, wall, output = measured(command)
    # StarSpace spends the first seconds reading the corpus; time only the epochs from its own log is not
    # possible (no timestamps), so report wall time and, separately, a 1-epoch run to subtract loading.
    params_one = native.Hyperparameters(epochs=1)
    _, wall_one, _ = measured(
        [str(binary), *starspace_engine.train_arguments(train_file, work / "ss_one", params_one, args.threads)]
    )
    per_epoch_ss = (wall - wall_one) / max(args.epochs - 1, 1)
    symbols, matrix = bs.io.read_starspace_tsv(work / "ss_model.tsv")
    region_vectors, label_vectors, table = vectors_from_symbols(symbols, matrix, adata.var, None)
    X = held_out.X
    sets = native.set_vectors(region_vectors, X.indptr.astype(np.int64), X.indices)
    results["StarSpace binary"] = (
        per_epoch_ss * args.epochs,
        wall,
        rss,
        hit_at_1(sets, held_out.obs, table, label_vectors),
    )

    print(
        f"{'engine':<30}{'s/epoch':>9}{'speed-up':>10}{'wall s':>9}{'peak RSS MB':>13}"
        + "".join(f"{f:>12}" for f in FIELDS)
    )
    base = results["StarSpace binary"][0] / args.epochs
    for name, (seconds, wall, rss, hits) in results.items():
        per_epoch = seconds / args.epochs
        print(
            f"{name:<30}{per_epoch:>9.2f}{base / per_epoch:>9.1f}x{wall:>9.1f}{rss:>13.0f}"
            + "".join(f"{hits[f]:>12.3f}" for f in FIELDS)
        )
    print(
        "\ns/epoch: native = training loop only; StarSpace = (wall of the full run - wall of a 1-epoch run) / "
        "(epochs - 1), so corpus loading is excluded for both. Columns per field: r2l hit@1 on held-out sets."
    )
    print(
        json.dumps({k: {"s_per_epoch": v[0] / args.epochs, "rss_mb": v[2], "hit@1": v[3]} for k, v in results.items()})
    )


if __name__ == "__main__":
    main()
