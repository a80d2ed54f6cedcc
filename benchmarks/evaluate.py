"""Held-out retrieval quality, repeated: bedspace vs the StarSpace-compatible run, overlap, enrichment and random.

    python benchmarks/evaluate.py                  # the report: 5 splits × 2 training seeds, published settings
    python benchmarks/evaluate.py --quick          # 3 splits × 2 seeds, 20 epochs: a few minutes
    python benchmarks/evaluate.py --sweep          # also what StarSpace's options do (mean ± sd, slow)

On the real hg19 collection (172 sets), tokenized on the consensus universe, labels organ, cell_class and assay.
``bs.tl.evaluate_repeated`` holds out 25% of the sets, stratified by organ, for each split seed, and trains every
method once per split and training seed:

* ``bedspace``: the default: ``bs.tl.train``'s default space (the annotator's label scores), calibrated; r2l and
  l2r by the default annotator (a kernel ridge classifier on the sets' region overlap, ranked by its calibrated
  probabilities); r2r by the cosine of the set vectors (``bs.tl.search``'s default in that space);
* ``bedspace-labels``: the same space, annotating by the label vectors, r2r by the cosine (answers from vectors
  alone, StarSpace's way of searching);
* ``starspace-labels``: the StarSpace-compatible native run (StarSpace's objective, published settings: dim
  100, 50 epochs, lr 0.05; ``exclude_positives=False``: only the drawn positive label is kept out of the
  negatives, as in StarSpace), annotating by the label vectors and r2r by the cosine, as StarSpace does
  (``starspace`` is the default annotator on that run, uncalibrated: the classifier does not depend on the
  training, so its r2l and l2r ranks are ``bedspace``'s; its r2r adds 0.5 × the probability that a training set
  shares the held-out set's labels to the cosine, the default r2r in StarSpace's space);
* ``overlap``: Jaccard k-NN (r2l, l2r) and Jaccard ranking (r2r), no training;
* ``enrichment``: LOLA's Fisher test, label = its best-ranked training set, no training;
* ``random``: random scores.

Prints mean ± sd over the runs of r2l hit@1, l2r MAP and r2r MAP per field, the expected calibration error of
the default annotator's probabilities (on these splits, and pooled over 20 more splits of each kind, stratified by
organ and at random, for enough answers to measure it; see below), how much of the spread of r2l hit@1 is the
training seed alone, paired by split where bedspace beats, trails or is within noise of the best of overlap,
enrichment and the StarSpace-compatible run annotating by its label vectors (``starspace-labels``, StarSpace's
way), and the training time with and without calibration. The consensus universe was built from all 172 sets,
held-out ones included (a mild advantage shared by every method: which regions exist). ``--universe tiles_5kb``
has no such leak. ``--stored-float16`` answers as a model folder does: region vectors stored as
float16, set vectors as trained. ``--calibration-only`` prints the pooled calibration errors alone.

Why two kinds of split for the calibration: the probabilities are fitted on leave-one-out annotations of the
training sets, which stand for new experiments drawn like the collection's own. A split stratified by organ
instead holds out one set of every small organ and keeps all its other sets in training, so its held-out sets
have one label-mate more than a training set left out has: they are easier than the calibration expects, and
the probabilities may read underconfident there. Sets held out at random (``stratify=False``) are drawn the way
the calibration assumes. About 45 held-out sets a split are too few to measure an error of 0.05 (a perfectly
calibrated annotator shows about 0.06 on the 450 answers of 5 splits × 2 seeds): the pooled runs hold out 20
splits' worth. The r2l probabilities do not depend on the training seed (the annotator compares region tokens),
so the pooled splits train the default space on one seed. Beside each pool's errors, organ's answers by how many sets
of the collection carry the held-out set's organ: where stated and right part.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
HEADLINE = {"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}
SPREAD = ["bedspace", "bedspace-labels", "starspace-labels"]
PUBLISHED = {"dim": 100, "epochs": 50, "lr": 0.05}
SWEEP = {
    "100 epochs": {"epochs": 100},
    "lr 0.1": {"lr": 0.1},
    "dim 200": {"dim": 200},
    "negSearchLimit 20": {"neg_search_limit": 20},
    "softmax loss": {"loss": "softmax"},
    "margin 0.2": {"margin": 0.2},
    "dropout 0.5": {"dropout": 0.5},
}


def headline(result: bs.tl.RepeatedEvaluation) -> pd.DataFrame:
    table = result.table(HEADLINE)
    return table.loc[[(f, s, m) for f in FIELDS for s, m in HEADLINE.items()]]


def seed_spread(result: bs.tl.RepeatedEvaluation, methods: list[str]) -> pd.DataFrame:
    """r2l hit@1 spread: all runs, between splits, between training seeds of one split."""
    summary = result.summary
    rows = summary[(summary["search"] == "r2l") & (summary["metric"] == "hit@1") & summary["method"].isin(methods)]
    return rows.pivot(index="field", columns="method", values=["sd", "sd_split", "sd_seed"]).loc[FIELDS].round(3)


RIVALS = ["overlap", "enrichment", "starspace-labels"]


def verdicts(result: bs.tl.RepeatedEvaluation, method: str = "bedspace") -> pd.DataFrame:
    """Paired by split: the method's mean over seeds minus the best rival (:data:`RIVALS`) of that number."""
    runs = result.runs
    runs = runs[[HEADLINE.get(s) == m for s, m in zip(runs["search"], runs["metric"], strict=True)]]
    per_split = runs.groupby(["field", "search", "method", "split"])["value"].mean().unstack("method")
    rows = []
    for (field, search), part in per_split.groupby(level=["field", "search"]):
        best = part[[r for r in RIVALS if r != method]].mean().idxmax()
        diff = (part[method] - part[best]).to_numpy()
        se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
        verdict = "beats" if diff.mean() > 2 * se else "trails" if diff.mean() < -2 * se else "within noise"
        rows.append((field, f"{search} {HEADLINE[search]}", best, diff.mean(), se, verdict))
    table = pd.DataFrame(rows, columns=["field", "number", "best rival", "difference", "se", "verdict"])
    order = {(f, f"{s} {m}"): i for i, (f, (s, m)) in enumerate((f, sm) for f in FIELDS for sm in HEADLINE.items())}
    return table.iloc[np.argsort([order[(f, n)] for f, n in zip(table["field"], table["number"], strict=True)])]


def joint_space(result: bs.tl.RepeatedEvaluation) -> pd.DataFrame:
    """Per field and search: bedspace-labels minus starspace-labels (paired by split), r2l minus the annotator."""
    runs = result.runs
    runs = runs[[HEADLINE.get(s) == m for s, m in zip(runs["search"], runs["metric"], strict=True)]]
    per_split = runs.groupby(["field", "search", "method", "split"])["value"].mean().unstack("method")
    rows = []
    for (field, search), part in per_split.groupby(level=["field", "search"]):
        diff = (part["bedspace-labels"] - part["starspace-labels"]).to_numpy()
        se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
        to_annotator = (part["bedspace-labels"] - part["bedspace"]).mean() if search == "r2l" else np.nan
        rows.append((field, f"{search} {HEADLINE[search]}", part["bedspace-labels"].mean(),
                     part["starspace-labels"].mean(), diff.mean(), se, to_annotator))  # fmt: skip
    columns = ["field", "number", "label vectors", "StarSpace's", "difference", "se", "minus the annotator"]
    table = pd.DataFrame(rows, columns=columns)
    order = {(f, f"{s} {m}"): i for i, (f, (s, m)) in enumerate((f, sm) for f in FIELDS for sm in HEADLINE.items())}
    return table.iloc[np.argsort([order[(f, n)] for f, n in zip(table["field"], table["number"], strict=True)])]


def by_label_size(result: bs.tl.RepeatedEvaluation, adata, field: str) -> pd.DataFrame:
    """Stated against right, by how many sets of the collection carry the held-out set's label (pooled answers)."""
    answers = result.predictions[(result.predictions["method"] == "bedspace") & (result.predictions["field"] == field)]
    labels = adata.obs[field].astype(str)
    size = answers["set"].map(labels.map(labels.value_counts()))
    groups = pd.cut(size, [1, 3, 10, 40, np.inf], labels=["2-3", "4-10", "11-40", "over 40"])
    table = answers.groupby(groups, observed=True).agg(
        answers=("correct", "size"), stated=("confidence", "mean"), right=("correct", "mean")
    )
    return table.rename_axis(f"sets of the {field}").reset_index()


def main_table(adata, args, n_splits: int, seeds: list[int], settings: dict) -> None:
    """The table over the organ-stratified splits, the training times, spreads and verdicts."""
    t0 = time.perf_counter()
    starspace = dict(bs.tl.STARSPACE_COMPATIBLE) | settings
    result = bs.tl.evaluate_repeated(
        adata,
        fields=FIELDS,
        stratify="organ",
        n_splits=n_splits,
        seeds=seeds,
        configurations={"bedspace": {}, "starspace": starspace},
        train_kwargs={"n_threads": args.threads},
    )
    print(f"evaluated in {time.perf_counter() - t0:.0f} s\n")
    train_part, _ = bs.pp.split(adata, stratify="organ", test_size=0.25, random_state=0)
    seconds = {}
    # the default last: its annotator's diagnostics are read below
    for name, options in (("StarSpace's objective", starspace), ("the default space, uncalibrated",
                          {"calibrate": False}), ("the default", {})):  # fmt: skip
        t0 = time.perf_counter()
        bs.tl.train(train_part, labels=FIELDS, n_threads=args.threads, **options)
        seconds[name] = time.perf_counter() - t0
    print("training time, split 0: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + "\n")
    # what the calibration is fitted on (each training set annotated from the others) against the held-out sets
    diagnostics = train_part.uns["bedspace"]["annotator"]["diagnostics"]
    runs = result.runs
    held_out = runs[(runs["method"] == "bedspace") & (runs["split"] == 0) & (runs["search"] == "r2l")]
    held_out = held_out[held_out["metric"] == "hit@1"].groupby("field")["value"].mean()
    print("r2l hit@1, split 0: leave-one-out on the training sets (the calibration's data) vs the held-out sets")
    for field in FIELDS:
        print(f"  {field:<11} {float(diagnostics[field]['hit@1']):.3f}  vs  {held_out[field]:.3f}")
    print()
    print("=== mean ± sd over runs (rows: field, search, metric)")
    print(headline(result).to_string())
    print("\n=== r2l hit@1 spread: sd over all runs, between splits (of per-split means), between seeds within a split")
    print(seed_spread(result, SPREAD).to_string())
    ece = result.table({"r2l": "ECE"})
    print("\n=== expected calibration error of the default annotator's r2l probabilities (15 bins, held-out sets)")
    print("per run (about 45 annotations each: noisy by construction), mean ± sd:")
    print(ece.to_string())
    print("pooled over every held-out annotation of every run:")
    print(result.calibration_error().round(3).to_string(index=False))
    for method in SPREAD:
        print(f"\n=== {method} against the best of {', '.join(RIVALS)}, paired by split (mean difference, se)")
        print(verdicts(result, method).round(3).to_string(index=False))
    print("\n=== the default space's label vectors against StarSpace's objective, and against the default annotator")
    print(joint_space(result).round(3).to_string(index=False))


def store_region_vectors_as_float16() -> None:
    """Every training leaves its region vectors rounded to float16: the queries are embedded as a model folder does."""
    from bedspace.tl import _train

    trained = _train.train

    def train(adata, **options):
        result = trained(adata, **options)
        target = result if options.get("copy") else adata
        key = options.get("key_added", "bedspace")
        target.varm[key] = np.asarray(target.varm[key], dtype=np.float16).astype(np.float32)
        return result

    _train.train = train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 splits × 2 seeds and 20 epochs: a few minutes")
    parser.add_argument("--splits", type=int, help="number of stratified splits (default 5, quick 3)")
    parser.add_argument("--seeds", type=int, help="training seeds per split (default 2)")
    parser.add_argument("--epochs", type=int, help="training epochs (default 50, quick 20)")
    parser.add_argument("--threads", type=int, default=2, help="training threads (default 2)")
    parser.add_argument(
        "--calibration-splits",
        type=int,
        help="splits of each kind pooled for the calibration error (default 20, quick 5)",
    )
    parser.add_argument(
        "--calibration-only", action="store_true", help="only the pooled calibration error (a few minutes)"
    )
    parser.add_argument("--universe", default="consensus", choices=["consensus", "tiles_5kb"])
    parser.add_argument(
        "--stored-float16",
        action="store_true",
        help="answer with region vectors rounded to float16, as a model folder stores them (set vectors as trained)",
    )
    parser.add_argument("--sweep", action="store_true", help="also evaluate the option sweep (slow)")
    parser.add_argument("--only", nargs="+", help="with --sweep: only the options whose name starts so")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)

    if args.stored_float16:
        store_region_vectors_as_float16()
    n_splits = args.splits or (3 if args.quick else 5)
    seeds = list(range(args.seeds or 2))
    settings = PUBLISHED | {"epochs": args.epochs or (20 if args.quick else PUBLISHED["epochs"])}
    data = bs.datasets.encode_hg19()
    t0 = time.perf_counter()
    adata = bs.pp.tokenize(data.beds, data.universes[args.universe], metadata=data.metadata)
    print(
        f"hg19 collection: {adata.n_obs} sets on the {args.universe} universe ({adata.n_vars:,} regions), "
        f"tokenized in {time.perf_counter() - t0:.0f} s"
    )
    print(
        f"{n_splits} splits (25% held out, stratified by organ) × {len(seeds)} training seeds = "
        f"{n_splits * len(seeds)} runs per trained method; baselines once per split. Settings: "
        + ", ".join(f"{k} {v}" for k, v in settings.items())
        + f", {args.threads} threads"
    )

    if not args.calibration_only:
        main_table(adata, args, n_splits, seeds, settings)

    # The r2l probabilities do not depend on the training seed (the annotator compares region tokens): one seed.
    n_pooled = args.calibration_splits or (5 if args.quick else 20)
    for kind, stratify in (("stratified by organ", "organ"), ("at random", False)):
        t0 = time.perf_counter()
        pooled = bs.tl.evaluate_repeated(
            adata,
            fields=FIELDS,
            stratify=stratify,
            n_splits=n_pooled,
            seeds=[0],
            train_kwargs={"n_threads": args.threads},
            baselines=(),
        )
        print(
            f"\n=== calibration error pooled over {n_pooled} splits holding 25% of the sets out {kind}, default space "
            f"({time.perf_counter() - t0:.0f} s; held-out sets of a label no training set has are not annotated)"
        )
        print(pooled.calibration_error().round(3).to_string(index=False))
        print(by_label_size(pooled, adata, "organ").round(3).to_string(index=False))

    if args.sweep:
        sweep = SWEEP
        if args.only:
            sweep = {k: v for k, v in sweep.items() if any(k.startswith(prefix) for prefix in args.only)}
        t0 = time.perf_counter()
        swept = bs.tl.evaluate_repeated(
            adata,
            fields=FIELDS,
            stratify="organ",
            n_splits=n_splits,
            seeds=seeds,
            configurations={
                "starspace": {"space": "starspace", **settings},
                **{name: {"space": "starspace", **settings, **options} for name, options in sweep.items()},
            },
            train_kwargs={"n_threads": args.threads},
            baselines=(),
        )
        print(f"\n=== option sweep, mean ± sd over the same runs ({time.perf_counter() - t0:.0f} s)")
        print(headline(swept).to_string())


if __name__ == "__main__":
    main()
