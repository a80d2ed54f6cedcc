"""The bundled hg19 slice (chr21–22) with ``bedspace demo``'s settings: quality over splits and seeds.

    python benchmarks/slice.py             # 5 organ-stratified splits × 2 training seeds
    python benchmarks/slice.py --quick     # 3 splits × 1 seed

``bs.datasets.encode_hg19_chr21_22()``: the 171 hg19 sets with peaks on chr21 and chr22 (of 172; one TF ChIP has
none there), on the consensus universe's 18,522 regions there. ``bs.tl.evaluate_repeated`` holds out a quarter of
each organ per split and trains with the demo's settings (dim 50, 30 epochs, one thread); every method is measured
on the same held-out sets:

* ``bedspace``: the default annotator (r2l, l2r); r2r by cosine plus 0.5 × the label agreement;
* ``bedspace-labels``: the same embedding, by its label vectors alone (StarSpace's way);
* ``overlap``: Jaccard k-NN; ``enrichment``: LOLA's Fisher test; ``random``: chance.

Prints mean ± sd over the runs of r2l hit@1, l2r MAP and r2r MAP per field, then the default against the best of
overlap and enrichment paired by split (difference of means, its se, and a verdict at 2 se). The demo's time, cold
and warm, and its repeatability: ``benchmarks/cold_start.py``.
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
from bedspace.cli._demo import BUNDLED_LABELS  # noqa: E402

HEADLINE = {"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}
RIVALS = ["overlap", "enrichment"]
DEMO = {"dim": 50, "epochs": 30, "n_threads": 1}


def paired(result: bs.tl.RepeatedEvaluation) -> pd.DataFrame:
    """The default minus the best rival, per split (mean over seeds), as mean and se over splits."""
    runs = result.runs
    runs = runs[[HEADLINE.get(s) == m for s, m in zip(runs["search"], runs["metric"], strict=True)]]
    per_split = runs.groupby(["field", "search", "method", "split"])["value"].mean().unstack("method")
    rows = []
    for field in BUNDLED_LABELS:
        for search, metric in HEADLINE.items():
            part = per_split.loc[(field, search)]
            best = part[RIVALS].mean().idxmax()
            diff = (part["bedspace"] - part[best]).to_numpy()
            se = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.nan
            verdict = "ahead" if diff.mean() > 2 * se else "behind" if diff.mean() < -2 * se else "within noise"
            rows.append((field, f"{search} {metric}", best, diff.mean(), se, verdict))
    return pd.DataFrame(rows, columns=["field", "number", "best rival", "difference", "se", "verdict"])


def quality(n_splits: int, seeds: list[int]) -> None:
    data = bs.datasets.encode_hg19_chr21_22()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)
    print(f"{adata.n_obs} sets × {adata.n_vars:,} regions, {int(adata.X.nnz):,} tokens\n")
    t0 = time.perf_counter()
    result = bs.tl.evaluate_repeated(
        adata, fields=BUNDLED_LABELS, stratify="organ", n_splits=n_splits, seeds=seeds, train_kwargs=DEMO
    )
    print(f"evaluated in {time.perf_counter() - t0:.0f} s ({n_splits} splits × {len(seeds)} seeds)\n")
    table = result.table(HEADLINE)
    table = table.loc[[(f, s, m) for f in BUNDLED_LABELS for s, m in HEADLINE.items()]]
    print("=== mean ± sd over runs")
    print(table.to_string())
    print(f"\n=== bedspace against the best of {', '.join(RIVALS)}, paired by split")
    print(paired(result).round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 splits × 1 seed")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)  # the held-out parts' little-evidence notes
    quality(3, [0]) if args.quick else quality(5, [0, 1])


if __name__ == "__main__":
    main()
