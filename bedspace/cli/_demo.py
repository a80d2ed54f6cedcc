"""``bedspace demo``: the whole pipeline on bundled data, in under a minute."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._keys import DEFAULT
from .._outputs import check_replace, output_file

#: Written into the demo's figure (its ``Creator``), so that a later demo knows the file as its own.
FIGURE_MARK = "bedspace demo"
#: The figure formats whose files carry that mark; a figure of another format is never replaced.
_MARKED = ("png", "pdf", "svg", "eps", "ps")


def demo(args: argparse.Namespace) -> None:
    """Tokenize, train, compare, search, evaluate on held-out sets, draw; print what each step did."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    import bedspace as bs

    if args.data is None:
        data = bs.datasets.insulators()
        beds, metadata, universe, chrom_sizes = data.beds, data.metadata, data.universe, data.chrom_sizes
        labels = ["target", "cell_type"]
        print(f"bedspace demo on the bundled {data.name} collection ({len(data.files)} region sets)")
    else:
        if args.metadata is None or args.universe is None:
            raise ValueError("--data needs --metadata and --universe")
        beds, metadata, universe, chrom_sizes = args.data, args.metadata, args.universe, None
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        print(f"bedspace demo on {beds}")
    options = {"dim": args.dim, "epochs": args.epochs, "n_threads": args.jobs}
    figure = Path(args.figure)
    figure_format(figure)  # before a minute of work: a format matplotlib cannot write, a file not to replace
    check_replace(figure, overwrite=args.overwrite, own=demo_figure, option="--overwrite")

    def wide():
        return pd.option_context("display.width", 160, "display.max_columns", 10, "display.max_colwidth", 40)

    adata = bs.pp.tokenize(beds, universe, metadata=metadata, chrom_sizes=chrom_sizes, n_jobs=args.jobs)
    info = adata.uns[DEFAULT]["universe"]
    print(f"\n1. tokenized {adata.n_obs} region sets onto universe {info['name']!r} ({adata.n_vars:,} regions)")
    print(
        f"   {int(adata.X.nnz):,} tokens; regions used by at least one set: {int((adata.var['n_sets'] > 0).sum()):,}\n"
    )
    with wide():
        print(adata.obs[[*labels, "n_regions", "n_tokens", "frac_regions_in_universe"]].head(20).round(3))

    bs.tl.train(adata, labels=labels, **options)
    loss = adata.uns[DEFAULT]["loss"]
    print(f"\n2. trained a {args.dim}-dimensional joint embedding with the built-in engine, {args.epochs} epochs")
    print(f"   loss {loss[0]:.4f} (first epoch) -> {loss[-1]:.4f} (last epoch)")

    bs.tl.distances(adata)
    similarity = adata.obsm["bedspace_label_similarity"]
    print(
        f"\n3. cosine similarity of {'each' if len(similarity) <= 20 else 'the first 10'} region set(s) to each label\n"
    )
    with wide():
        print(similarity.head(20 if len(similarity) <= 20 else 10).round(2))

    model = bs.BEDSpaceModel.from_anndata(adata)
    first = adata.obs_names[0]
    label = model.labels.index[0]
    print(
        f"\n4. the three searches\n\n   r2l: labels of {first}, annotated from the other sets by a classifier of "
        "their shared\n   regions (kernel ridge on token cosine; with 10 or more training sets, calibrated "
        "probabilities come too)"
    )
    with wide():
        print(model.search(first, search_type="r2l", top_k=4).to_string(index=False))
        print(f"\n   l2r: region sets for {label}")
        print(
            model.search(label, search_type="l2r", top_k=4)[["rank", "name", "score", *labels]].to_string(index=False)
        )
        print(f"\n   r2r: region sets like {first}")
        print(
            model.search(first, search_type="r2r", top_k=4)[["rank", "name", "score", *labels]].to_string(index=False)
        )

    test_size = 0.5 if adata.n_obs < 20 else 0.25
    if adata.obs[labels[0]].value_counts().max() < 2:
        print(f"\n5. held-out evaluation skipped: every value of {labels[0]!r} has one set, so none can be held out")
        _figure(adata, labels, figure, overwrite=args.overwrite)
        return
    train, test = bs.pp.split(adata, stratify=labels[0], test_size=test_size, random_state=0)
    bs.tl.train(train, labels=labels, **options)
    table = bs.tl.evaluate(train, test, fields=labels)
    headline = table[table["metric"].isin(["hit@1", "MAP"])]
    summary = headline.pivot_table(index=["field", "search", "metric"], columns="method", values="value")
    print(
        f"\n5. held-out evaluation: trained on {train.n_obs} sets, tested on {test.n_obs} unseen ones "
        f"(split by {labels[0]}), beside the overlap (Jaccard) and random baselines\n"
    )
    print(summary[["bedspace", "overlap", "random"]].round(3).to_string())

    _figure(adata, labels, figure, overwrite=args.overwrite)


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


def _figure(adata, labels: list[str], path: Path, *, overwrite: bool) -> None:
    import matplotlib.pyplot as plt

    import bedspace as bs

    fmt = figure_format(path)
    ax = bs.pl.label_similarity(adata, groupby=labels[0], show=False)
    metadata = {"Creator": FIGURE_MARK} if fmt in _MARKED else None
    with output_file(path, overwrite=overwrite, own=demo_figure, option="--overwrite") as tmp:
        ax.figure.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(ax.figure)
    print(f"\n6. figure of the set × label similarities: {path}")
