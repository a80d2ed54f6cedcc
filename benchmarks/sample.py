"""Train on a stratified sample or on every set: what ``sample_sets`` costs in held-out retrieval quality.

    nice -n 19 python benchmarks/sample.py [--sets 2000] [--samples 200 500] [--epochs 5] [--seeds 2]
                                           [--workdir /tmp/bedspace-sample] [--threads 2] [--no-equal-work]
    python benchmarks/sample.py --report OUTPUT   # the table and verdict again from a run's printed output

For each split seed s (0, 1, ..., ``--seeds`` − 1):

1. the 172 real hg19 sets, tokenized on the 574,740-region consensus universe, are split with
   ``bs.pp.split(stratify="organ", test_size=0.25, random_state=s)``; the held-out real sets (45) are the
   queries, and no training below sees them or any copy of them;
2. a **synthetic** collection of ``--sets`` sets is made from the other 127 only: ``bs.datasets.perturb`` copies
   (taken in turn, seed s) with 10% of the regions shifted (N(0, 150 bp)), 5% consensus-universe regions added
   and 5% dropped, as in ``benchmarks/scale.py``; labels (organ, cell_class, assay) are the source's. It is
   tokenized out of core (``bs.pp.tokenize(..., out=...)``) and opened backed, as at scale;
3. ``bs.tl.train`` (built-in engine, dim 100, lr 0.05, labels organ, cell_class and assay, seed s) is run on the
   backed collection: on **every set**; on stratified samples of ``--samples`` sets (``sample_sets=``) at the
   same ``--epochs``; and (unless ``--no-equal-work``) on the same samples at ``epochs × sets / sample``
   epochs, so that the sample sees as many training examples as the full run (**equal work**). Each training
   runs in a fresh child process started through a small launcher (as in ``benchmarks/scale.py``), so its peak
   RSS is ``ru_maxrss`` of that process alone (``os.wait4``). The timed call is the whole ``bs.tl.train``:
   reading the training sets from the file, training, then embedding every set of the collection (the same
   embedding cost in every row). A backed collection is not calibrated, so no row pays for calibration;
4. each model is measured on the held-out real sets, exactly as ``bs.tl.evaluate`` measures its
   ``bedspace-labels`` rows (its own functions, on the model's vectors): **r2l hit@1** per field by cosine to
   the label vectors (``method="embedding"``: the model of a backed collection carries no tokens, and the
   question is about the embedding), and **r2r MAP** per field, each query ranking every set of the synthetic
   collection by cosine (relevant: sets with the query's value in that field).

Prints one table: per configuration, the sets trained on, epochs, examples seen (sets × epochs), wall time of
``bs.tl.train`` (mean over seeds), peak RSS (largest over seeds) and the six quality numbers as mean ± sd over
the seeds; then, per sample, its largest drop against every set over the six numbers and a one-line verdict.
Drops are paired by split seed (a sample and the full run share the split, the queries and the collection, so
how hard a split is cancels out): the mean of the per-seed differences ± its standard error, beside the larger
seed sd of the table. A drop counts as beyond seed noise when the mean paired difference exceeds twice its
standard error (with 2 or 3 seeds that is a rough test: read the per-seed lines above the table too). The
training seed is the split seed, and two threads train lock-free, so a rerun of one seed moves by a few points
as well; the sd includes that.

``--report OUTPUT`` prints the table and the verdict again from the last line of an earlier run's output.

Made once and reused from ``--workdir`` (outside the repository): ``sets_seed{s}_n{N}/`` (the perturbed BED
files: about 0.9 GB per 1,000 sets), ``collection_seed{s}_n{N}.h5ad`` (about 0.4 GB per 1,000 sets) and
``model/`` (the last model, overwritten). Delete the folder when done. The last line of the output is every
run's numbers as JSON.
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
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
RATES = {"shift_rate": 0.1, "add_rate": 0.05, "drop_rate": 0.05}  # as benchmarks/scale.py
SETTINGS = {"dim": 100, "lr": 0.05}
NUMBERS = [(field, search) for field in FIELDS for search in ("r2l", "r2r")]
METRIC = {"r2l": "hit@1", "r2r": "MAP"}
FULL = "every set"

# A child's ru_maxrss starts at its parent's RSS when the parent's memory is shared up to exec (vfork,
# posix_spawn), so every training is started from this small launcher (as in benchmarks/scale.py): its own peak
# is a few MB, and wait4 gives the training's.
LAUNCHER = (
    "import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], dict(os.environ)); "
    "_, status, usage = os.wait4(pid, 0); "
    "print('PEAK', usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), flush=True)"
)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb() -> float:
    """Current resident memory (VmRSS) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the synthetic collection of one split -------------------------------------------------------------------


def collection_of(data, train_names: list[str], seed: int, n_sets: int, workdir: Path, threads: int) -> Path:
    """The tokenized synthetic collection made from the training part of split ``seed`` (made once, reused)."""
    import anndata as ad

    import bedspace as bs

    universe = data.universes["consensus"]
    t0 = time.perf_counter()
    # perturb resumes a folder holding the same plan (sources, rates, seed, n_sets) and refuses any other
    perturbed = bs.datasets.perturb(
        [data.beds / name for name in train_names],
        data.metadata,
        universe,
        n_sets=n_sets,
        chrom_sizes=data.chrom_sizes,
        out_dir=workdir / f"sets_seed{seed}_n{n_sets}",
        random_state=seed,
        n_jobs=threads,
        **RATES,
    )
    metadata = pd.read_csv(perturbed.metadata)
    leaked = sorted(set(metadata["source_file"]) - set(train_names))
    if leaked:  # the whole comparison rests on the queries never being trained on, even as copies
        raise RuntimeError(f"split {seed}: held-out sets among the copies' sources: {leaked[:5]}")
    made = time.perf_counter() - t0

    path = workdir / f"collection_seed{seed}_n{n_sets}.h5ad"
    if path.exists():
        # reused only if it holds these very files (a collection from other sets would silently change the runs)
        names = ad.read_h5ad(path, backed="r").obs_names
        if list(names) != list(metadata["file_name"]):
            print(f"  {path.name} holds other sets: tokenizing again", flush=True)
            path.unlink()
    t1 = time.perf_counter()
    if not path.exists():
        adata = bs.pp.tokenize(perturbed.beds, universe, metadata=perturbed.metadata, out=path, n_jobs=threads)
        adata.file.close()
    print(
        f"  collection: {n_sets:,} copies of {len(train_names)} sets (perturb {made:.0f} s, tokenize "
        f"{time.perf_counter() - t1:.0f} s; 0 s means reused from {workdir})",
        flush=True,
    )
    return path


# --- one training, in its own process ------------------------------------------------------------------------


def train_step(collection: Path, model_dir: Path, options: dict) -> dict:
    """Train in a fresh process (through the launcher); its result with peak RSS. Any failure raises."""
    command = [
        sys.executable, "-c", LAUNCHER, sys.executable, __file__,
        "--child", str(collection), str(model_dir), json.dumps(options),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    result = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    peak = next((x.split() for x in out.stdout.splitlines() if x.startswith("PEAK ")), None)
    if out.returncode != 0 or result is None or peak is None or peak[2] != "0":
        raise RuntimeError(f"training {options} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
    return {**json.loads(result.removeprefix("RESULT ")), "peak_mb": float(peak[1])}


def child(collection: Path, model_dir: Path, options: dict) -> None:
    import anndata as ad

    import bedspace as bs

    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    rss_start = rss_mb()
    adata = ad.read_h5ad(collection, backed="r")
    t0 = time.perf_counter()
    bs.tl.train(
        adata,
        labels=FIELDS,
        epochs=options["epochs"],
        n_threads=options["threads"],
        sample_sets=options["sample_sets"],
        random_state=options["seed"],
        **SETTINGS,
    )
    seconds = time.perf_counter() - t0
    # saved after the timing; the parent measures the model, so that evaluation adds nothing to this peak
    bs.BEDSpaceModel.from_anndata(adata).save(model_dir, overwrite=True)
    result = {
        "seconds": seconds,
        "rss_start": rss_start,
        "train_sets": int(adata.obs["bedspace_in_training"].sum()),
        "examples": int(adata.uns["bedspace"]["params"]["n_examples"]) * options["epochs"],
    }
    print("RESULT", json.dumps(result), flush=True)


# --- quality on the held-out real sets -----------------------------------------------------------------------


def quality(model_dir: Path, queries) -> dict[str, float]:
    """r2l hit@1 (label vectors) and r2r MAP (the collection) per field, as bs.tl.evaluate's bedspace-labels rows."""
    import bedspace as bs
    from bedspace._similarity import unit_rows

    # the functions bs.tl.evaluate computes its "bedspace-labels" rows with; a backed collection's model has no
    # tokens for bs.tl.evaluate's default annotator, so it is called on the vectors here
    from bedspace.tl._evaluate import _Field, _measure

    model = bs.BEDSpaceModel.load(model_dir)
    vectors = unit_rows(model.embed(queries))
    out = {}
    for name in FIELDS:
        field = _Field.code(model, name, model.set_metadata, queries.obs)
        known = field.known
        if not known.any():
            raise RuntimeError(f"no held-out set has a {name} value that the training had")
        r2l = vectors[known] @ model.unit_label_vectors[field.in_model].T
        r2r = vectors[known] @ model.unit_set_vectors.T
        results = _measure(r2l, r2r, field.test[known], field.train)
        for search, metric in METRIC.items():
            out[f"{name} {search}"] = results[search][metric]
    return out


# --- the report ----------------------------------------------------------------------------------------------


def summarise(runs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    numbers = [f"{f} {s}" for f, s in NUMBERS]
    grouped = runs.groupby("configuration", sort=False)
    table = pd.DataFrame(
        {
            "sets": grouped["train_sets"].mean(),
            "epochs": grouped["epochs"].first(),
            "examples": grouped["examples"].mean(),
            "seconds": grouped["seconds"].mean(),
            "peak_mb": grouped["peak_mb"].max(),
        }
    )
    for number in numbers:
        table[number] = grouped[number].mean()
        table[number + " sd"] = grouped[number].std(ddof=1)
    return table.loc[order]


def report(table: pd.DataFrame, n_seeds: int) -> None:
    header = ["training", "sets", "epochs", "examples seen", "wall s", "peak RSS"]
    header += [f"{f} {s} {METRIC[s]}" for f, s in NUMBERS]
    print(f"\nheld-out real sets as queries; quality: mean ± sd over {n_seeds} split seeds\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, row in table.iterrows():
        cells = [
            name,
            f"{row['sets']:,.0f}",
            f"{row['epochs']:.0f}",
            f"{row['examples']:,.0f}",
            f"{row['seconds']:.0f}",
            f"{row['peak_mb']:,.0f} MB",
        ]
        cells += [f"{row[f'{f} {s}']:.3f} ± {row[f'{f} {s} sd']:.3f}" for f, s in NUMBERS]
        print("| " + " | ".join(cells) + " |")


def verdict(runs: pd.DataFrame, table: pd.DataFrame) -> None:
    """Per sample: its largest drop against every set, paired by split seed, beside the seed sd; then one line."""
    # paired by seed: a sample and the full run share the split, the queries and the collection, so the split's
    # own difficulty (which moves every configuration together) cancels out of the difference
    by_seed = runs.set_index(["configuration", "seed"])
    full = by_seed.loc[FULL]
    print()
    losing, closest = [], None
    for name in table.index.drop(FULL):
        drops = {}
        for field, search in NUMBERS:
            number = f"{field} {search}"
            paired = (full[number] - by_seed.loc[name][number]).dropna()
            if len(paired) < 2:
                raise RuntimeError(f"{name}: fewer than 2 seeds paired with every set")
            se = paired.std(ddof=1) / np.sqrt(len(paired))
            sd = max(table.loc[FULL, number + " sd"], table.loc[name, number + " sd"])
            drops[(field, search)] = (paired.mean(), se, sd)
        (field, search), (drop, se, sd) = max(drops.items(), key=lambda item: item[1][0])
        beyond = [k for k, (d, s, _) in drops.items() if d > 2 * s]
        if beyond:
            losing.append(name)
        if closest is None or drop < closest[1]:
            closest = (name, drop, se, sd, field, search)
        print(
            f"{name}: largest drop against every set {drop:+.3f} ± {se:.3f} se, paired by seed ({field} {search} "
            f"{METRIC[search]}; seed sd {sd:.3f}); beyond 2 se on {len(beyond)} of {len(drops)} numbers"
            + (f" ({', '.join(f'{f} {s}' for f, s in beyond)})" if beyond else "")
        )
    name, drop, se, sd, field, search = closest
    print(
        f"verdict: {len(losing)} of {len(table) - 1} sample runs lose quality beyond seed noise"
        + (f" ({'; '.join(losing)})" if losing else "")
        + f"; the closest to every set is {name!r}, largest drop {drop:+.3f} ± {se:.3f} ({field} {search}, seed sd "
        f"{sd:.3f})"
    )


def show(runs: pd.DataFrame) -> None:
    """The table, its notes and the verdict, from every run's numbers."""
    n_sets = int(runs.loc[runs["configuration"] == FULL, "train_sets"].max())  # every set is labelled
    table = summarise(runs, list(pd.unique(runs["configuration"])))
    report(table, runs["seed"].nunique())
    print(
        "\nwall s: the whole bs.tl.train call (reading the training sets from the backed file, training, embedding "
        f"all {n_sets:,} sets), mean over seeds;\npeak RSS: ru_maxrss of the training's own process, largest "
        "over seeds; examples seen: training sets × epochs."
    )
    verdict(runs, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=2000, help="synthetic sets in the collection (default 2000)")
    parser.add_argument("--samples", type=int, nargs="+", default=[200, 500], help="sample_sets values")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the full run and the equal-epoch samples")
    parser.add_argument("--seeds", type=int, default=2, help="split seeds 0 .. seeds-1 (at least 2)")
    parser.add_argument("--test-size", type=float, default=0.25, help="share of real sets held out (by organ)")
    parser.add_argument("--equal-work", action=argparse.BooleanOptionalAction, default=True,
                        help="also train the samples at epochs × sets / sample (default: yes)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bedspace-sample")
    parser.add_argument("--report", type=Path, help="the table and verdict again from an earlier run's output")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        last = [x for x in args.report.read_text().splitlines() if x.startswith('{"runs"')]
        if not last:
            sys.exit(f"no results line in {args.report}")
        runs = pd.DataFrame(json.loads(last[-1])["runs"])
        show(runs)
        return
    if args.child:
        collection, model_dir, options = args.child
        child(Path(collection), Path(model_dir), json.loads(options))
        return
    if args.seeds < 2:
        sys.exit("--seeds must be at least 2: the verdict compares drops with the seed sd")
    if args.epochs < 1 or args.sets < 1 or min(args.samples) < 1:
        sys.exit("--epochs, --sets and --samples must be positive")
    samples = sorted(set(args.samples))
    if samples[-1] >= args.sets:
        sys.exit(f"--samples must be smaller than --sets ({args.sets}): a sample of every set is the full run")
    args.workdir.mkdir(parents=True, exist_ok=True)
    if Path(__file__).resolve().parent.parent in args.workdir.resolve().parents:
        sys.exit("--workdir must be outside the repository")

    import bedspace as bs

    warnings.simplefilter("ignore", bs.BEDSpaceWarning)
    configurations = [(FULL, None, args.epochs)]
    configurations += [(f"sample of {k}", k, args.epochs) for k in samples]
    if args.equal_work:
        configurations += [(f"sample of {k}, equal work", k, round(args.epochs * args.sets / k)) for k in samples]

    start = time.perf_counter()
    data = bs.datasets.encode_hg19()
    real = bs.pp.tokenize(data.beds, data.universes["consensus"], metadata=data.metadata, n_jobs=args.threads)
    print(
        f"{args.sets:,} synthetic sets per split, {args.seeds} split seeds, samples {samples}, {args.epochs} epochs, "
        f"dim {SETTINGS['dim']}, lr {SETTINGS['lr']}, {args.threads} threads; workdir {args.workdir}; bedspace "
        f"{bs.__version__}; {len(os.sched_getaffinity(0))} cores; load average {load()}",
        flush=True,
    )

    runs = []
    model_dir = args.workdir / "model"
    for seed in range(args.seeds):
        train_part, queries = bs.pp.split(real, stratify="organ", test_size=args.test_size, random_state=seed)
        print(f"split {seed}: {train_part.n_obs} real sets copied, {queries.n_obs} held out as queries", flush=True)
        collection = collection_of(data, list(train_part.obs_names), seed, args.sets, args.workdir, args.threads)
        for name, sample_sets, epochs in configurations:
            options = {"sample_sets": sample_sets, "epochs": epochs, "seed": seed, "threads": args.threads}
            result = train_step(collection, model_dir, options)
            scores = quality(model_dir, queries)
            runs.append({"seed": seed, "configuration": name, "epochs": epochs, **result, **scores})
            print(
                f"  {name}: {result['seconds']:.0f} s, {result['peak_mb']:,.0f} MB; "
                + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()),
                flush=True,
            )

    show(pd.DataFrame(runs))
    print(f"\nrun time {(time.perf_counter() - start) / 60:.1f} min; load average at the end: {load()}")
    print(json.dumps({"runs": runs}, default=float))


if __name__ == "__main__":
    main()
