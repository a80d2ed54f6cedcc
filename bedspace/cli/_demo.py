"""``bedspace demo``: the whole method on real data bundled with bedspace, offline, in seconds, the same every run."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._outputs import check_replace, output_file

#: Written into the demo's figure (its ``Creator``), so that a later demo knows the file as its own.
FIGURE_MARK = "bedspace demo"
#: The figure formats whose files carry that mark; a figure of another format is never replaced.
_MARKED = ("png", "pdf", "svg", "eps", "ps")
#: The label fields of the bundled collection the demo trains and measures.
BUNDLED_LABELS = ["organ", "cell_class", "assay"]
#: The columns of the held-out table: the methods as :func:`bedspace.tl.evaluate` names them.
METHODS = ("bedspace", "overlap", "enrichment", "random")
BASELINES = ("overlap", "enrichment")
#: One row per search of the held-out table: its metric.
METRICS = {"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}


def demo(args: argparse.Namespace) -> None:
    """Tokenize, hold out, train, compare with the baselines, show the three searches, draw; say what each did."""
    import matplotlib

    matplotlib.use("Agg")

    import bedspace as bs

    figure = Path(args.figure)
    figure_format(figure)  # before the work: a format matplotlib cannot write, a file not to replace
    # the demo's figure is its own by-product: an earlier demo's is replaced, so the demo can run again as it is
    check_replace(figure, overwrite=True, own=demo_figure, option="the demo")
    if args.data is None:
        data = bs.datasets.encode_hg19_chr21_22()
        beds, metadata, universe, chrom_sizes = data.beds, data.metadata, data.universe, data.chrom_sizes
        labels = BUNDLED_LABELS
    else:
        if args.metadata is None or args.universe is None:
            raise ValueError("--data needs --metadata and --universe")
        beds, metadata, universe, chrom_sizes = args.data, args.metadata, args.universe, None
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]

    adata = bs.pp.tokenize(beds, universe, metadata=metadata, chrom_sizes=chrom_sizes, n_jobs=args.jobs)
    if args.data is None:
        _introduce_bundled(adata)
    else:
        print(f"bedspace demo on {beds}: {adata.n_obs} region sets, labels {', '.join(labels)}")
    _tokenized(adata, labels)

    # one thread unless asked: StarSpace's objective (--dim, --epochs) trained by Hogwild on several threads gives
    # slightly different numbers every run
    options = {"dim": args.dim, "epochs": args.epochs, "n_threads": args.jobs or 1, "random_state": 0}
    first = labels[0]
    if adata.obs[first].value_counts().max() < 2:
        bs.tl.train(adata, labels=labels, **options)
        print(f"\n2. trained on all {adata.n_obs} sets; {_trained(adata)}")
        print(f"\n3. held-out evaluation skipped: every value of {first!r} has one set, so none can be held out")
        _searches(adata, adata, labels, step=4)
        _figure(adata, labels, figure, step=5)
        return
    train, test = bs.pp.split(adata, stratify=first, test_size=0.25, random_state=0)
    bs.tl.train(train, labels=labels, **options)
    print(
        f"\n2. held out {test.n_obs} sets (a quarter of each {first}) as if they were new experiments, and trained "
        f"on the other {train.n_obs}: {_trained(train)}"
    )
    _held_out(bs.tl.evaluate(train, test, fields=labels, baselines=(*BASELINES, "random")), test, labels)
    _searches(train, test, labels, step=4)
    _figure(train, labels, figure, step=5)


def _introduce_bundled(adata) -> None:
    kinds = adata.obs["collection"].value_counts()
    print(
        f"bedspace demo on real data bundled with bedspace: {adata.n_obs} hg19 region sets — ENCODE DNase-seq of "
        f"{kinds.get('encode_awg_dnase', 0)} cell types, ENCODE ChIP-seq of {kinds.get('encode_awg_tfbs_gm12878', 0)} "
        f"transcription factors in GM12878, ATAC-seq of {kinds.get('heme_atac', 0)} sorted blood cell types — with "
        "their peaks on chromosomes 21 and 22 (bs.datasets.encode_hg19_chr21_22(); the whole genome: "
        "bs.datasets.encode_hg19())"
    )


def _tokenized(adata, labels: list[str]) -> None:
    import pandas as pd

    from .._keys import DEFAULT

    name = adata.uns[DEFAULT]["universe"]["name"]
    print(
        f"\n1. tokenized the sets onto the universe {name!r} ({adata.n_vars:,} regions): each set becomes the "
        f"universe regions its peaks overlap, {int(adata.X.nnz):,} in all\n"
    )
    columns = [*labels, "n_regions", "n_tokens"]
    with pd.option_context("display.width", 160, "display.max_columns", 10, "display.max_colwidth", 40):
        print(adata.obs[columns].sample(n=min(5, adata.n_obs), random_state=0).to_string())


def _trained(adata) -> str:
    import bedspace as bs

    from .._keys import DEFAULT

    params, loss = adata.uns[DEFAULT]["params"], adata.uns[DEFAULT]["loss"]
    annotator = bs.BEDSpaceModel.from_anndata(adata).annotator
    calibrated = (
        "its probabilities calibrated on the training sets, each left out in turn"
        if annotator is not None and annotator.is_calibrated
        else "scores, uncalibrated (too few sets to calibrate)"
    )
    if params["space"] == "annotator":
        return (
            "the default annotator — a kernel ridge classifier on the sets' shared regions, "
            f"{calibrated} — and its label scores written as a {params['dim']}-dimensional joint space of sets, "
            "regions and labels"
        )
    return (
        f"a {params['dim']}-dimensional joint embedding of sets and labels (built-in engine, {params['epochs']} "
        f"epochs, loss {loss[0]:.4f} → {loss[-1]:.4f}), and the default annotator: a kernel ridge classifier on "
        f"the sets' shared regions, {calibrated}"
    )


def _held_out(table, test, labels: list[str]) -> None:
    rows = []
    for field in labels:
        for search, metric in METRICS.items():
            chosen = table[(table["field"] == field) & (table["search"] == search) & (table["metric"] == metric)]
            values = dict(zip(chosen["method"], chosen["value"], strict=True))
            rows.append({"field": field, "search": f"{search} {metric}", **{m: values.get(m) for m in METHODS}})
    import pandas as pd

    summary = pd.DataFrame(rows).set_index(["field", "search"])
    print(
        f"\n3. the {test.n_obs} held-out sets: annotated (r2l: share whose top label is right), found by label "
        "(l2r) and matched with training sets of their label (r2r), beside two methods that need no training\n"
    )
    print(summary.round(3).to_string())
    print(
        "\n   bedspace: the default annotator (r2l, l2r), the cosine of the set vectors in its joint space "
        "(r2r)\n   overlap: a vote of the 5 training sets sharing most regions (Jaccard); enrichment: "
        "LOLA's Fisher test; random: chance\n   MAP: mean average precision of the ranking, 1 when every right "
        "answer comes first"
    )
    for (field, search), values in summary.iterrows():
        best = max(BASELINES, key=lambda baseline: values[baseline])
        gap = values[best] - values["bedspace"]
        if gap <= 1e-9:
            continue
        if search.startswith("r2l"):
            n = int(test.obs[field].notna().sum())
            sets = round(gap * n)
            detail = f"right on {sets} set{'s' if sets != 1 else ''} more of {n} ({1 / n:.3f} each)"
        else:
            detail = f"{gap:.3f} higher"
        print(
            f"   {field} {search}: {best} is {detail}. One split of so few sets is noisy: over 5 splits × 2 seeds "
            "the annotator is at or above the best of the two on every row (Benchmarks, in the documentation)"
        )


def _searches(train, test, labels: list[str], *, step: int) -> None:
    import pandas as pd

    import bedspace as bs

    queries = _examples(test, labels[0])
    # stored sets asked for by name are annotated from the other sets, never from themselves
    asked = queries if test is train else test[queries]
    calls = bs.tl.search(train, asked, search_type="r2l", top_k=1)
    stated = "probability" if "probability" in calls.columns else "score"  # uncalibrated: scores
    wide = calls.pivot_table(index="query", columns="field", values="value", aggfunc="first")
    strength = calls.pivot_table(index="query", columns="field", values=stated, aggfunc="first")
    first = labels[0]
    rows = pd.DataFrame(
        {
            f"true {first}": test.obs.loc[queries, first].astype(str),
            f"annotated {first}": wide.loc[queries, first].astype(str),
            stated: strength.loc[queries, first].round(3),
        }
    )
    if "in_domain" in calls.columns:
        rows["in_domain"] = calls[calls["field"] == first].set_index("query").loc[queries, "in_domain"]
    for field in labels[1:]:
        rows[field] = [
            f"{value} ({p:.2f})"
            for value, p in zip(wide.loc[queries, field], strength.loc[queries, field], strict=True)
        ]
    with pd.option_context("display.width", 200, "display.max_columns", 12, "display.max_colwidth", 36):
        which = "held-out sets" if test is not train else "sets, each from the others"
        print(f"\n{step}. the three searches\n\n   r2l, a few {which} annotated (top label, its {stated}):\n")
        print(rows.to_string())
        if stated == "probability":
            print(
                "\n   probability: how often an answer stated so is right (calibrated on the training sets); "
                "in_domain: the set looks like the collection's sets (an answer outside it is a guess)"
            )
        label = f"{first}={test.obs.loc[queries[0], first]}"
        hits = bs.tl.search(train, label, search_type="l2r", top_k=5)
        print(f"\n   l2r, the training sets for {label}:\n")
        shown = [c for c in ("rank", "name", "has_label", "probability", "score", *labels) if c in hits.columns]
        print(hits[shown].round(3).to_string(index=False))
        hits = bs.tl.search(train, asked[:1], search_type="r2r", top_k=5)
        print(f"\n   r2r, the training sets most like {queries[0]}:\n")
        print(hits[["rank", "name", "score", *labels]].round(3).to_string(index=False))


def _examples(test, field: str) -> list[str]:
    """Held-out sets to show: the first of each of the five commonest values of ``field``."""
    values = test.obs[field].value_counts().index[:5]
    return [test.obs_names[test.obs[field] == value][0] for value in values]


def figure_format(path: Path) -> str:
    """The format of the figure ``path`` names (``png`` without a suffix); one matplotlib cannot write is refused."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = path.suffix[1:].lower() or "png"
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"--figure {path}: matplotlib cannot write .{fmt} figures; give one of {sorted(supported)}")
    return fmt


def demo_figure(path: Path) -> bool:
    """Whether ``path`` is a figure an earlier demo wrote (its mark is in it; figures are small)."""
    try:
        if path.stat().st_size > 64 << 20:
            return False
        return FIGURE_MARK.encode() in path.read_bytes()
    except OSError:
        return False


def _figure(adata, labels: list[str], path: Path, *, step: int) -> None:
    import matplotlib.pyplot as plt

    import bedspace as bs

    fmt = figure_format(path)
    bs.tl.distances(adata, neighbors=False)
    ax = bs.pl.label_similarity(adata, groupby=labels[0], show=False)
    metadata = {"Creator": FIGURE_MARK} if fmt in _MARKED else None
    with output_file(path, overwrite=True, own=demo_figure, option="the demo") as tmp:
        ax.figure.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(ax.figure)
    print(f"\n{step}. figure of the similarity of every set to every label, sets grouped by {labels[0]}: {path}")
