"""Fidelity of ``bs.tl.explain``: do a query's top regions carry its label, more than any regions of it?

    python benchmarks/explain.py [--seeds 0 1 2] [--ks 10 30 100 300] [--draws 5] [--epochs 2]

On the hg19 collection tokenized on its consensus universe: per seed, 25% of the sets are held out (stratified by
organ, ``bs.pp.split``) and the rest trained with labels organ, cell_class and assay (the default annotator does
not depend on the embedding: a few epochs do). Each held-out set is explained for its top r2l label of each field
(``bs.tl.explain``), then annotated again without its k top-contributing regions, and without k regions of it
drawn at random (``--draws`` draws, averaged), for each k. Printed per k: the mean drop of the label's score
(the annotator's score, before calibration) when the top regions go, what their contributions summed to (the
additive prediction), the mean drop when random regions go, the ratio of the two drops (``inf`` when random
regions do not lower the score on average: a smaller query's overlaps weigh a little more) and the share of
queries whose top regions lowered the score more than the random ones; then the same per field. A query counts at k
when it has at least 2·k regions in the universe.

The consensus universe was built from all 172 sets, held-out ones included (as in ``benchmarks/perturb.py``).
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
from bedspace.annotate._tokens import TokenRows  # noqa: E402
from bedspace.tl._collection import searchable  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]


def drops(adata, seed: int, ks: list[int], draws: int, epochs: int, threads: int) -> pd.DataFrame:
    """Per held-out set, field and k: the score drops without the top and without random regions."""
    train, test = bs.pp.split(adata, stratify="organ", test_size=0.25, random_state=seed)
    t0 = time.perf_counter()
    bs.tl.train(train, labels=FIELDS, epochs=epochs, n_threads=threads, random_state=seed)
    print(
        f"seed {seed}: {train.n_obs} training sets, {test.n_obs} held out; trained in {time.perf_counter() - t0:.0f} s"
    )
    annotator = searchable(train).annotator
    labels = searchable(train).label_table
    column_of = {
        (c, s, e): i
        for i, (c, s, e) in enumerate(zip(adata.var["chrom"], adata.var["start"], adata.var["end"], strict=True))
    }
    rng = np.random.default_rng(seed)
    rows, seconds = [], []
    for name in test.obs_names:
        query = test[[name]]
        regions = np.sort(query.X.indices).astype(np.int32)
        t0 = time.perf_counter()
        why = bs.tl.explain(train, query, top_k=max(ks))
        seconds.append(time.perf_counter() - t0)
        variants, keys = [regions], [("full", 0, None, -1)]
        for entry in why.labels.itertuples():
            top = why.regions[why.regions["label"] == entry.label]
            order = np.array(
                [column_of[(c, s, e)] for c, s, e in zip(top["chrom"], top["start"], top["end"], strict=True)]
            )
            for k in ks:
                if regions.size < 2 * k:
                    continue
                variants.append(np.setdiff1d(regions, order[:k]))
                keys.append(("top", k, entry.label, float(top["contribution"].iloc[:k].sum())))
                for _ in range(draws):
                    variants.append(np.setdiff1d(regions, rng.choice(regions, k, replace=False)))
                    keys.append(("random", k, entry.label, np.nan))
        sizes = np.array([v.size for v in variants])
        indptr = np.concatenate([[0], np.cumsum(sizes)])
        tokens = TokenRows(indptr, np.concatenate(variants).astype(np.int32), np.arange(len(variants)), adata.n_vars)
        scores = annotator.annotate(tokens).scores
        for entry in why.labels.itertuples():
            column = int(
                np.searchsorted(np.flatnonzero(labels.in_field(entry.field)), labels.names.get_loc(entry.label))
            )
            field_scores = scores[entry.field][:, column]
            assert abs(field_scores[0] - entry.score) < 1e-9, (name, entry.label, field_scores[0], entry.score)
            for i, (kind, k, label, predicted) in enumerate(keys):
                if label == entry.label:
                    rows.append(
                        {"seed": seed, "query": name, "field": entry.field, "label": label, "k": k, "kind": kind,
                         "drop": field_scores[0] - field_scores[i], "predicted": predicted, "score": entry.score}
                    )  # fmt: skip
    print(
        f"  explained {test.n_obs} held-out sets: median {np.median(seconds):.2f} s, max {np.max(seconds):.2f} s each"
    )
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean drops of the top and random regions, their ratio, and the share of queries where top beat random."""
    per_query = table.groupby([*by, "seed", "query", "field", "kind"])["drop"].mean().unstack("kind")
    predicted = table[table["kind"] == "top"].groupby([*by, "seed", "query", "field"])["predicted"].first()
    per_query["predicted"] = predicted
    grouped = per_query.groupby(by)
    result = pd.DataFrame(
        {
            "queries": grouped.size(),
            "drop top-k": grouped["top"].mean(),
            "sum of their contributions": grouped["predicted"].mean(),
            "drop random k": grouped["random"].mean(),
        }
    )
    # a random removal that raises the score on average (the query's size shrinks: its overlaps weigh more) has
    # no finite ratio: inf, the top regions' drop against none
    result["ratio"] = np.where(result["drop random k"] > 0, result["drop top-k"] / result["drop random k"], np.inf)
    result["top > random"] = grouped.apply(lambda g: float((g["top"] > g["random"]).mean()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 30, 100, 300])
    parser.add_argument("--draws", type=int, default=5, help="random draws per query and k (default: 5)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (default: 2)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = bs.datasets.encode_hg19()
    adata = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata)
    table = pd.concat(
        [drops(adata, seed, args.ks, args.draws, args.epochs, args.threads) for seed in args.seeds], ignore_index=True
    )
    table = table[table["kind"] != "full"]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4g}".format):
        print(
            f"\nscore drop of the top label when k regions are removed (seeds {args.seeds}, {args.draws} random draws)"
        )
        print(summary(table, ["k"]).to_string())
        print("\nper field")
        print(summary(table, ["k", "field"]).to_string())


if __name__ == "__main__":
    main()
