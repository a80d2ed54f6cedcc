"""Retrieval quality on held-out sets: bedspace vs the overlap (Jaccard) and random baselines, and a sweep.

    python benchmarks/evaluate.py                 # the report: default settings
    python benchmarks/evaluate.py --sweep         # also what the method's options do to the numbers

On the hg19 collection, 25% held out stratified by organ (seed 0), labels organ, cell_class and assay. The
universe is built from the training sets only (consensus, min 5 sets) or is the 5 kb tiling. Prints, per
configuration, the evaluation table (``bs.tl.evaluate``) with both baselines, and a summary of where bedspace
beats, ties or trails the better baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
HEADLINE = [("r2l", "hit@1"), ("r2l", "MRR"), ("l2r", "MAP"), ("r2r", "MAP")]
SWEEP = {
    "default (dim 100, 50 epochs, lr 0.05)": {},
    "StarSpace negatives (exclude_positives=False)": {"exclude_positives": False},
    "100 epochs": {"epochs": 100},
    "lr 0.1": {"lr": 0.1},
    "dim 200": {"dim": 200},
    "negSearchLimit 20": {"neg_search_limit": 20},
    "softmax loss": {"loss": "softmax"},
    "margin 0.2": {"margin": 0.2},
    "dropout 0.5": {"dropout": 0.5},
    "dropout 0.8": {"dropout": 0.8},
}


def collection(universe_name: str, seed: int):
    data = bs.datasets.encode_hg19()
    everything = pd.read_csv(data.metadata)
    probe = bs.pp.tokenize(data.beds, data.universes["tiles_5kb"], metadata=data.metadata)
    train, test = bs.pp.split(probe, stratify="organ", test_size=0.25, random_state=seed)
    if universe_name == "tiles_5kb":
        return train, test
    train_files = [data.beds / n for n in everything["file_name"] if n in set(train.obs_names)]
    universe = bs.pp.consensus_universe(train_files, min_sets=5)
    full = bs.pp.tokenize(data.beds, universe, metadata=data.metadata)
    return full[train.obs_names].copy(), full[test.obs_names].copy()


def headline(table: pd.DataFrame) -> pd.DataFrame:
    wide = table.pivot_table(index=["field", "search", "metric"], columns="method", values="value")
    wide = wide.loc[[(f, s, m) for f in FIELDS for s, m in HEADLINE]]
    best = wide[["overlap", "random"]].max(axis=1)
    wide["verdict"] = [
        "beats" if b > o + 1e-9 else "ties" if abs(b - o) <= 1e-9 else "trails"
        for b, o in zip(wide["bedspace"], best, strict=True)
    ]
    return wide[["bedspace", "overlap", "random", "verdict"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="also run the option sweep")
    parser.add_argument("--universe", default="consensus", choices=["consensus", "tiles_5kb", "both"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", help="with --sweep: only the configurations whose name starts so")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    pd.set_option("display.width", 160)

    universes = ["consensus", "tiles_5kb"] if args.universe == "both" else [args.universe]
    configs = SWEEP if args.sweep else {"default (dim 100, 50 epochs, lr 0.05)": {}}
    if args.only:
        configs = {k: v for k, v in configs.items() if any(k.startswith(prefix) for prefix in args.only)}
    summary = []
    for universe_name in universes:
        train, test = collection(universe_name, args.seed)
        print(
            f"\n=== universe {universe_name}: {train.n_obs} training sets, {test.n_obs} held out, {train.n_vars:,} regions"
        )
        for name, options in configs.items():
            trained = train.copy()
            t0 = time.perf_counter()
            bs.tl.train(trained, labels=FIELDS, random_state=args.seed, **options)
            seconds = time.perf_counter() - t0
            table = bs.tl.evaluate(trained, test, fields=FIELDS)
            wide = headline(table)
            print(f"\n--- {name} (training {seconds:.0f} s)\n{wide.round(3).to_string()}")
            counts = wide["verdict"].value_counts()
            summary.append((universe_name, name, *(int(counts.get(v, 0)) for v in ("beats", "ties", "trails"))))
    print("\n=== where bedspace stands against the better baseline (12 headline numbers per configuration)")
    print(
        pd.DataFrame(summary, columns=["universe", "configuration", "beats", "ties", "trails"]).to_string(index=False)
    )


if __name__ == "__main__":
    main()
