"""Robustness to noisy region sets: annotation of held-out sets perturbed more and more, embedding vs overlap.

    python benchmarks/perturb.py [--seeds 0 1 2] [--levels 0 0.1 0.2 0.4 0.6 0.8] [--figure perturb.png]

On the hg19 collection tokenized on its consensus universe: per seed, 25% of the sets are held out (stratified by
organ, ``bs.pp.split``) and the rest trained with labels organ, cell_class and assay (20 epochs, 2 threads).
Each held-out set is then perturbed with ``bs.datasets.perturb`` at every level L: a share L of its regions is
shifted (normal, mean 0, sd 150 bp), universe regions amounting to L of it are added, and a share L of the result
is dropped (bedshift's order). Level 0 is the held-out sets themselves. Every level is scored with
``bs.tl.evaluate``: r2l hit@1 (the set's true label is the top-ranked one) per field, for the default annotator
(``bedspace``: the kernel ridge classifier on the sets' region overlap), the label vectors alone
(``bedspace-labels``), beside the Jaccard kNN ``overlap`` baseline and the other baselines ``evaluate`` reports.
Then the confidence the default states at each level, as ``bs.tl.search``'s r2l table shows it: the share of
queries it abstains on (out of the domain: no probability; hit@1 still counts them, ranked by enrichment), and
over the answers it gives the mean probability of the top label against the share right, and the answers stated
at >= 0.9 with the share of them right.

The perturbed sets are synthetic. The consensus universe was built from all 172 sets, held-out ones included (as
the published BEDspace evaluation did); ``benchmarks/evaluate.py`` shows the leak-free variant.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
CONFIDENCE = ["abstained", "stated", "right", "n stated >= 0.9", "right when >= 0.9 (count)"]
LEVELS = [0.0, 0.1, 0.2, 0.4, 0.6, 0.8]
STYLE = {
    "bedspace": ("C0", "-", "o"),
    "bedspace-labels": ("C2", "-", "D"),
    "overlap": ("C1", "--", "s"),
    "random": ("0.6", ":", ""),
}


def scores(data, adata, seed: int, levels: list[float], epochs: int, threads: int, work: Path) -> pd.DataFrame:
    """r2l hit@1 per level, field and method for one held-out split."""
    train, test = bs.pp.split(adata, stratify="organ", test_size=0.25, random_state=seed)
    t0 = time.perf_counter()
    bs.tl.train(train, labels=FIELDS, epochs=epochs, n_threads=threads, random_state=seed)
    seconds = time.perf_counter() - t0
    print(f"seed {seed}: {train.n_obs} training sets, {test.n_obs} held out; trained in {seconds:.0f} s")
    held_out = [data.beds / name for name in test.obs_names]
    universe = data.universes["consensus"]
    rows = []
    for level in levels:
        t0 = time.perf_counter()
        noisy = bs.datasets.perturb(
            held_out,
            data.metadata,
            universe,
            shift_rate=level,
            add_rate=level,
            drop_rate=level,
            chrom_sizes=data.chrom_sizes,
            random_state=seed,
            out_dir=work / f"seed{seed}_level{level:g}",
            n_jobs=threads,
        )
        tokenized = bs.pp.tokenize(noisy.beds, universe, metadata=noisy.metadata, n_jobs=threads)
        table = bs.tl.evaluate(train, tokenized, fields=FIELDS)
        hits = table[(table["search"] == "r2l") & (table["metric"] == "hit@1")]
        rows += [(seed, level, r.field, r.method, r.value) for r in hits.itertuples()]
        # share of the perturbed sets the default annotator judges unlike the collection (base rates, a warning)
        answers = bs.tl.search(train, tokenized, search_type="r2l", top_k=1)
        first = answers[answers["field"] == FIELDS[0]]
        rows.append((seed, level, "all", "share out of domain", float(1 - first["in_domain"].mean())))
        # the confidence a user reads: the top label's probability against whether it is right
        for field in FIELDS:
            top = answers[answers["field"] == field].set_index("query")
            truth = tokenized.obs.loc[top.index, field].astype(str)
            top = top[truth.isin(set(train.obs[field].dropna().astype(str)))]  # labels training knows, as evaluate
            right = top["value"].astype(str) == truth[top.index]
            stated = top["probability"].astype(float)
            answered = stated.notna()  # out of the domain the annotator abstains (no probability)
            right, stated = right[answered], stated[answered]
            sure = stated >= 0.9
            rows += [
                (seed, level, field, "abstained", float(1 - answered.mean())),
                (seed, level, field, "stated", float(stated.mean())),
                (seed, level, field, "right", float(right.mean())),
                (seed, level, field, "n stated >= 0.9", float(sure.sum())),
                (seed, level, field, "right when >= 0.9 (count)", float(right[sure].sum())),
            ]
        print(f"  level {level:g}: perturbed, tokenized and evaluated in {time.perf_counter() - t0:.0f} s")
    return pd.DataFrame(rows, columns=["seed", "level", "field", "method", "hit@1"])


def plot(summary: pd.DataFrame, path: Path, seeds: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FIELDS), figsize=(4.2 * len(FIELDS), 3.6), sharey=True)
    for ax, field in zip(axes, FIELDS, strict=True):
        part = summary[summary["field"] == field]
        for method, rows in part.groupby("method", sort=False):
            color, line, marker = STYLE.get(method, (None, "-.", "^"))
            label = {
                "bedspace": "default annotator (bedspace)",
                "bedspace-labels": "label vectors (bedspace-labels)",
                "overlap": "overlap (Jaccard kNN)",
            }.get(method, method)
            ax.errorbar(
                rows["level"], rows["mean"], yerr=rows["sd"], label=label, color=color, linestyle=line,
                marker=marker, capsize=3, linewidth=2 if method in ("bedspace", "overlap") else 1,
            )  # fmt: skip
        ax.set_title(field)
        ax.set_xlabel("perturbation level (shift = add = drop rate)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("r2l hit@1 on held-out sets")
    axes[-1].legend(loc="lower left", fontsize=8)
    over = f"mean ± sd over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    fig.suptitle(f"Annotating perturbed (synthetic) held-out hg19 sets ({over})")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--levels", type=float, nargs="+", default=LEVELS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--figure", type=Path, default=None, help="save the plot here (PNG)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    pd.set_option("display.width", 200)
    start = time.perf_counter()

    data = bs.datasets.encode_hg19()
    adata = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata, n_jobs=args.threads)
    print(f"{adata.n_obs} sets on {adata.n_vars:,} consensus regions; {bs.__version__=}, {args}\n")
    with tempfile.TemporaryDirectory(prefix="bedspace-perturb-") as folder:
        results = pd.concat(
            [scores(data, adata, s, args.levels, args.epochs, args.threads, Path(folder)) for s in args.seeds]
        )

    summary = (
        results.groupby(["level", "field", "method"], sort=False)["hit@1"]
        .agg(mean="mean", sd=lambda x: x.std(ddof=1) if len(x) > 1 else 0.0)
        .reset_index()
    )
    confidence = results[results["method"].isin(CONFIDENCE)].pivot_table(
        index=["field", "level"], columns="method", values="hit@1", aggfunc="sum"
    )
    n = len(args.seeds)
    table = pd.DataFrame(
        {
            "abstained": confidence["abstained"] / n,
            "stated": confidence["stated"] / n,
            "right": confidence["right"] / n,
            "stated - right": (confidence["stated"] - confidence["right"]) / n,
            "n stated >= 0.9": confidence["n stated >= 0.9"].astype(int),
            "right when >= 0.9": confidence["right when >= 0.9 (count)"] / confidence["n stated >= 0.9"],
        }
    )
    print(
        "\nthe default annotator's stated confidence (top label's probability, as bs.tl.search shows it) and the share "
        "right, over the answers it gives (it abstains out of the domain: share 'abstained'), mean over seeds; "
        f"answers stated >= 0.9 pooled over them:\n{table.loc[FIELDS].round(3).to_string()}"
    )
    results = results[~results["method"].isin(CONFIDENCE)]
    summary = summary[~summary["method"].isin(CONFIDENCE)].copy()
    methods = list(dict.fromkeys(summary["method"]))
    spread = len(args.seeds) > 1
    pairs = zip(summary["mean"], summary["sd"], strict=True)
    summary["cell"] = [f"{m:.3f} ± {s:.3f}" if spread else f"{m:.3f}" for m, s in pairs]
    print(
        f"\nr2l hit@1 of held-out sets ({'mean ± sd over' if spread else 'with'} seeds {args.seeds}) at each "
        "perturbation level (shift = add = drop rate; shifts ~ N(0, 150 bp)); the perturbed sets are synthetic"
    )
    for field in FIELDS:
        part = summary[summary["field"] == field].pivot(index="level", columns="method", values="cell")
        print(f"\n{field}\n{part[[m for m in methods if m in part.columns]].to_string()}")
    flagged = summary[summary["field"] == "all"].set_index("level")["cell"]
    print(f"\nshare of the perturbed sets the default annotator flags as unlike the collection:\n{flagged.to_string()}")
    summary = summary[summary["field"] != "all"]
    methods = [m for m in methods if m != "share out of domain"]
    means = summary.pivot_table(index=["field", "method"], columns="level", values="mean")
    first, last = means.columns[0], means.columns[-1]
    print(f"\nchange in mean hit@1 from level {first:g} to level {last:g}:")
    print((means[last] - means[first]).unstack("method")[methods].loc[FIELDS].round(3).to_string())
    if args.figure is not None:
        plot(summary, args.figure, args.seeds)
        print(f"\nfigure: {args.figure}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
