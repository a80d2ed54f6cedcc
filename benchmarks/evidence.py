"""Small and one-chromosome queries: stated confidence vs right, by size, with and without the evidence ceilings.

    python benchmarks/evidence.py              # 5 splits × 2 seeds
    python benchmarks/evidence.py --quick      # 2 splits × 1 seed

On the real hg19 collection (172 sets, consensus universe, labels organ, cell_class and assay): for each split
(a fifth of the sets held out, stratified by organ) and seed, the default annotator (:class:`bs.annotate
.RegionAnnotator`) is fitted on the other sets. Every held-out BED file is cut into sub-files of 1, 3, 10, 30,
100, 300, 1000 and 3000 regions drawn at random, into its regions on chr1, on chr21 and on chrY, and kept whole;
each is tokenized like any query and annotated. For every kind of query, per field: how many were annotated (in
the domain), how many the annotator flagged as carrying little evidence, the share whose top label was right, and
the mean stated top probability *before* (the calibration alone, ``evidence_`` left out: what bedspace stated until
now) and *after* (the evidence ceilings). Stated above right is overconfidence. Mean ± sd over the runs.

Then l2r over the collection's own labels: R-precision (of the sets carrying a label, the share among the first
that many hits), mean over each field's labels, as ``bs.tl.search(..., search_type="l2r")`` lists them now
(carriers first, by how typical they are) and as it listed them before (every set by its leave-one-out
probability, ties in collection order); and for sets whose labels are unknown to the annotator — a fifth of the
sets, per split, with their labels removed — how well the estimate finds them (R-precision among those sets),
by the annotator's estimate and by the label vectors' cosine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import copy  # noqa: E402
import gzip  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402
from bedspace.annotate._estimator import stratified_folds  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
SIZES = [1, 3, 10, 30, 100, 300, 1000, 3000]
CHROMOSOMES = ["chr1", "chr21", "chrX", "chrY"]


def codes_of(obs: pd.DataFrame) -> tuple[dict, dict]:
    names = {f: sorted(obs[f].dropna().astype(str).unique()) for f in FIELDS}
    codes = {f: pd.Categorical(obs[f].astype("string"), categories=names[f]).codes.astype(np.int64) for f in FIELDS}
    return codes, names


def cut(beds: Path, names: list[str], out: Path, rng: np.random.Generator) -> pd.DataFrame:
    """Sub-files of each held-out BED file; one row per file written: its set and kind."""
    rows = []
    for name in names:
        with gzip.open(beds / name, "rt") as handle:
            lines = [line for line in handle if line.strip() and not line.startswith(("#", "track", "browser"))]
        stem = name.removesuffix(".bed.gz")
        kinds = {"whole": lines}
        for size in SIZES:
            if size < len(lines):
                kinds[f"{size} regions"] = [lines[i] for i in np.sort(rng.choice(len(lines), size, replace=False))]
        for chromosome in CHROMOSOMES:
            on = [line for line in lines if line.split("\t", 1)[0] == chromosome]
            if on:
                kinds[f"{chromosome} only"] = on
        for kind, part in kinds.items():
            path = out / f"{stem}__{kind.replace(' ', '_')}.bed"
            path.write_text("".join(part))
            rows.append({"file": path.name, "set": name, "kind": kind})
    return pd.DataFrame(rows)


def evidence_runs(data, adata, universe, splits: int, seeds: list[int]) -> pd.DataFrame:
    codes, names = codes_of(adata.obs)
    folds = stratified_folds(codes["organ"], 5, 0)
    chromosomes = adata.var["chrom"].to_numpy()
    coverage = adata.obs["frac_regions_in_universe"].to_numpy(np.float64)
    records = []
    for split in range(splits):
        train = np.flatnonzero(folds != split)
        held = adata.obs_names[folds == split].tolist()
        with tempfile.TemporaryDirectory() as scratch:
            table = cut(data.beds, held, Path(scratch), np.random.default_rng(split))
            queries = bs.pp.tokenize(scratch, universe)
        queries = queries[table["file"].to_numpy()]
        truth = {f: pd.Categorical(adata.obs.loc[table["set"], f].astype("string"), categories=names[f]).codes
                 for f in FIELDS}  # fmt: skip
        for seed in seeds:
            annotator = bs.annotate.RegionAnnotator(random_state=seed).fit(
                adata.X[train], {f: codes[f][train] for f in FIELDS}, names, coverage=coverage[train],
                chromosomes=chromosomes,
            )  # fmt: skip
            before = copy.copy(annotator)
            before.evidence_ = None
            query_coverage = queries.obs["frac_regions_in_universe"].to_numpy(np.float64)
            after_answer = annotator.annotate(queries.X, coverage=query_coverage)
            before_answer = before.annotate(queries.X, coverage=query_coverage)
            for f in FIELDS:
                p_after, p_before = after_answer.probabilities[f], before_answer.probabilities[f]
                records.append(
                    pd.DataFrame(
                        {
                            "split": split, "seed": seed, "field": f, "kind": table["kind"].to_numpy(),
                            "known": truth[f] >= 0, "in_domain": after_answer.in_domain,
                            "flagged": after_answer.evidence != "full",
                            "right": p_after.argmax(axis=1) == truth[f],
                            "stated_before": p_before.max(axis=1), "stated_after": p_after.max(axis=1),
                        }
                    )
                )  # fmt: skip
            print(f"  split {split + 1}/{splits}, seed {seed}: min_regions {annotator.evidence_.min_regions}")
    return pd.concat(records, ignore_index=True)


def evidence_report(runs: pd.DataFrame) -> None:
    order = ["whole", *[f"{s} regions" for s in SIZES], *[f"{c} only" for c in CHROMOSOMES]]
    answered = runs[runs["known"] & runs["in_domain"]]
    per_run = answered.groupby(["field", "kind", "split", "seed"]).agg(
        n=("right", "size"), flagged=("flagged", "mean"), right=("right", "mean"),
        before=("stated_before", "mean"), after=("stated_after", "mean"),
    )  # fmt: skip
    shares = runs[runs["known"]].groupby(["field", "kind"])["in_domain"].mean()
    for field in FIELDS:
        print(f"\n{field}: per kind of query, mean ± sd over the runs (stated above right = overconfident)")
        print(f"{'query':<15}{'n/run':>7}{'in domain':>11}{'flagged':>9}{'right':>15}{'stated before':>16}"
              f"{'stated after':>16}")  # fmt: skip
        for kind in order:
            try:
                part = per_run.loc[(field, kind)]
            except KeyError:
                continue

            def ms(column, part=part):
                return f"{part[column].mean():.3f} ± {part[column].std(ddof=1) if len(part) > 1 else 0:.3f}"

            print(f"{kind:<15}{part['n'].mean():>7.1f}{shares[(field, kind)]:>11.2f}{part['flagged'].mean():>9.2f}"
                  f"{ms('right'):>15}{ms('before'):>16}{ms('after'):>16}")  # fmt: skip


def r_precision(order_scores: np.ndarray, relevant: np.ndarray) -> float:
    r = int(relevant.sum())
    top = np.argsort(-order_scores, kind="stable")[:r]
    return float(relevant[top].mean())


def l2r_report(adata, splits: int, seeds: list[int]) -> None:
    print("\nl2r: R-precision, mean over each field's labels (mean ± sd over the runs)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.tl.train(adata, labels=FIELDS, dim=50, epochs=10, n_threads=2, random_state=0)
    model = bs.BEDSpaceModel.from_anndata(adata)
    answers = model.need_annotator().reference_annotation()
    now, before = {f: [] for f in FIELDS}, {f: [] for f in FIELDS}
    for f in FIELDS:
        for value in adata.obs[f].dropna().astype(str).unique():
            carries = (adata.obs[f].astype("string") == value).fillna(False).to_numpy()
            listed = model.search(f"{f}={value}", search_type="l2r", top_k=adata.n_obs)
            now[f].append(float(listed["name"].iloc[: carries.sum()].isin(adata.obs_names[carries]).mean()))
            column = list(model.need_annotator().label_names_[f]).index(f"{f}={value}")
            before[f].append(r_precision(answers.ranking(f)[:, column], carries))
    print(f"{'field':<12}{'listed now':>12}{'listed before':>15}   (all 172 sets, their own labels)")
    for f in FIELDS:
        print(f"{f:<12}{np.mean(now[f]):>12.3f}{np.mean(before[f]):>15.3f}")
    # sets whose labels the annotator does not know: how well each way finds them
    codes, _ = codes_of(adata.obs)
    folds = stratified_folds(codes["organ"], 5, 0)
    found = {(f, way): [] for f in FIELDS for way in ("annotator", "label vectors")}
    for split in range(splits):
        hidden = folds == split
        masked = adata.copy()
        for f in FIELDS:
            masked.obs[f] = masked.obs[f].astype(object).where(~hidden, None)
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bs.tl.train(masked, labels=FIELDS, dim=50, epochs=10, n_threads=2, random_state=seed)
            masked_model = bs.BEDSpaceModel.from_anndata(masked)
            for f in FIELDS:
                for way, method in (("annotator", "regions"), ("label vectors", "embedding")):
                    values = []
                    for value in adata.obs.loc[hidden, f].dropna().astype(str).unique():
                        if f"{f}={value}" not in masked_model.labels.index:
                            continue
                        listed = masked_model.search(f"{f}={value}", search_type="l2r", top_k=adata.n_obs,
                                                     method=method)  # fmt: skip
                        listed = listed[listed["name"].isin(adata.obs_names[hidden])]
                        relevant = adata.obs.loc[listed["name"], f].astype("string").eq(value).fillna(False).to_numpy()
                        if relevant.any():
                            values.append(float(relevant[: relevant.sum()].mean()))
                    found[(f, way)].append(np.mean(values))
    print(f"\n{'field':<12}{'annotator':>16}{'label vectors':>16}   (sets with their labels removed, among them)")
    for f in FIELDS:
        cells = [f"{np.mean(found[(f, w)]):.3f} ± {np.std(found[(f, w)], ddof=1):.3f}"
                 for w in ("annotator", "label vectors")]  # fmt: skip
        print(f"{f:<12}{cells[0]:>16}{cells[1]:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 splits × 1 seed")
    args = parser.parse_args()
    splits, seeds = (2, [0]) if args.quick else (5, [0, 1])
    data = bs.datasets.encode_hg19()
    universe = data.universe
    adata = bs.pp.tokenize(data.beds, universe, metadata=data.metadata)
    print(f"hg19: {adata.n_obs} sets, {adata.n_vars:,} universe regions; {splits} splits × {len(seeds)} seeds")
    evidence_report(evidence_runs(data, adata, universe, splits, seeds))
    l2r_report(adata, splits, seeds)


if __name__ == "__main__":
    main()
