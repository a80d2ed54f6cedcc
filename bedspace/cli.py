"""The ``bedspace`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ._version import __version__

USER_ERRORS = (FileNotFoundError, IsADirectoryError, ValueError, KeyError, TypeError)


def _demo(args: argparse.Namespace) -> None:
    import numpy as np
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
        labels = args.labels.split(",")
        print(f"bedspace demo on {beds}")
    adata = bs.pp.tokenize(beds, universe, metadata=metadata, chrom_sizes=chrom_sizes, n_jobs=args.jobs)
    info = adata.uns["bedspace"]["universe"]
    print(f"\n1. tokenized {adata.n_obs} region sets onto universe {info['name']!r} ({adata.n_vars:,} regions)")
    print(
        f"   {int(adata.X.nnz):,} tokens; regions used by at least one set: {int((adata.var['n_sets'] > 0).sum()):,}\n"
    )
    columns = [c for c in labels if c in adata.obs.columns]
    table = adata.obs[[*columns, "n_regions", "n_tokens", "frac_regions_in_universe"]]
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))

    bs.tl.train(adata, labels=labels, dim=args.dim, epochs=args.epochs, n_threads=args.jobs)
    loss = adata.uns["bedspace"]["loss"]
    print(f"\n2. trained a {args.dim}-dimensional joint embedding, built-in engine, {args.epochs} epochs")
    print(f"   loss {loss[0]:.4f} (first epoch) -> {loss[-1]:.4f} (last epoch)\n")

    model = bs.BEDSpaceModel.from_anndata(adata)
    vectors = model.label_vectors / np.linalg.norm(model.label_vectors, axis=1, keepdims=True).clip(1e-12)
    similarity = pd.DataFrame(adata.obsm["X_bedspace"] @ vectors.T, index=adata.obs_names, columns=model.labels.index)
    shown = similarity if len(similarity) <= 20 else similarity.head(10)
    print(
        f"3. cosine similarity of {'every' if shown is similarity else 'the first 10'} region set(s) to every label\n"
    )
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print(shown.to_string(float_format=lambda x: f"{x:+.2f}") if shown is similarity else shown.round(2))
    for field in labels:
        in_field = similarity.loc[:, model.labels["field"].to_numpy() == field]
        predicted = in_field.idxmax(axis=1).str.split("=", n=1).str[1]
        correct = (predicted == adata.obs[field].astype(str)).mean()
        print(f"\n   {field}: the most similar label is the set's own for {correct:.0%} of the sets (training sets)")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``bedspace``."""
    parser = argparse.ArgumentParser(
        prog="bedspace",
        description="Joint embeddings of genomic region sets and their metadata.",
    )
    parser.add_argument("--version", action="version", version=f"bedspace {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="run the pipeline on bundled data",
        description="Run bedspace on the bundled dm3 insulator sets (offline), or on your own folder.",
        epilog=(
            "examples:\n  bedspace demo\n"
            "  bedspace demo --data beds/ --metadata labels.csv --universe universe.bed --labels cell_type,assay"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--data", help="folder of BED files (default: the bundled dm3 insulator sets)")
    demo.add_argument("--metadata", help="CSV with a file_name column (with --data)")
    demo.add_argument("--universe", help="universe BED file (with --data)")
    demo.add_argument("--labels", default="cell_type", help="comma-separated label columns (with --data)")
    demo.add_argument("--dim", type=int, default=50, help="embedding dimension (default: 50)")
    demo.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    demo.add_argument("-j", "--jobs", type=int, default=None, help="parallel threads (default: all cores)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user mistakes print one line to stderr and return 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            args.func(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bedspace {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
