"""The four commands users know: ``preprocess``, ``train``, ``distances``, ``search`` (thin over the Python API)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

COMPANION_SUFFIX = ".bedspace.h5ad"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def companion_of(training_file: Path) -> Path:
    """The tokenized collection written beside a training file, so later steps find universe and labels."""
    return training_file.with_name(training_file.name + COMPANION_SUFFIX)


def read_h5ad_checked(path: Path, what: str):
    """Read an .h5ad bedspace wrote; anything else (a pickle, a text file) is refused before it is opened."""
    import anndata as ad

    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as handle:
        if handle.read(8) != HDF5_MAGIC:
            raise ValueError(f"{path} is not a {what} written by bedspace (expected an HDF5/.h5ad file)")
    return ad.read_h5ad(path)


def write_h5ad_atomic(adata, path: Path) -> None:
    from .._atomic import atomic_path

    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def preprocess(args: argparse.Namespace) -> None:
    import bedspace as bs

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    adata = bs.pp.tokenize(args.input, args.universe, metadata=args.metadata, n_jobs=args.jobs)
    output = Path(args.output)
    bs.io.write_starspace(adata, output, labels=labels)
    adata.uns["bedspace"]["preprocess"] = {
        "labels": labels,
        "input": str(Path(args.input).resolve()),
        "metadata": str(Path(args.metadata).resolve()),
        "universe": str(Path(args.universe).resolve()),
        "training_file": output.name,
    }
    write_h5ad_atomic(adata, companion_of(output))
    print(
        f"wrote {output} ({int((adata.obs['n_tokens'] > 0).sum())} training lines, labels {labels}) and "
        f"{companion_of(output).name} (universe, metadata and tokens for the next steps)",
        file=sys.stderr,
    )


def train(args: argparse.Namespace) -> None:
    import bedspace as bs

    training_file = Path(args.input)
    if not training_file.exists():
        raise FileNotFoundError(f"training file not found: {training_file}")
    companion = companion_of(training_file)
    if not companion.exists():
        raise FileNotFoundError(
            f"{companion.name} is missing beside {training_file}: run `bedspace preprocess ... --output {training_file}` first"
        )
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it (an old model is never continued)")
    adata = read_h5ad_checked(companion, "preprocessed collection")
    labels = list(adata.uns["bedspace"]["preprocess"]["labels"])
    starspace = args.path_to_starspace
    bs.tl.train(
        adata,
        labels=labels,
        dim=args.dim,
        epochs=args.epochs,
        lr=args.lr,
        neg_search_limit=args.neg_search_limit,
        loss=args.loss,
        dropout=args.dropout,
        backend="starspace" if starspace else "native",
        starspace=starspace,
        exclude_positives=not starspace,
        n_threads=args.threads,
        random_state=args.seed,
    )
    bs.BEDSpaceModel.from_anndata(adata).save(output, overwrite=args.overwrite)
    loss = adata.uns["bedspace"]["loss"]
    engine = "the StarSpace binary" if starspace else "the built-in engine"
    print(f"trained with {engine}: loss {loss[0]:.4f} -> {loss[-1]:.4f}; model written to {output}", file=sys.stderr)


def distances(args: argparse.Namespace) -> None:
    import anndata as ad

    import bedspace as bs
    from bedspace._metadata import match_metadata, read_metadata
    from bedspace._regions import load_universe

    model = bs.BEDSpaceModel.load(args.input)
    universe = load_universe(args.universe)
    if not model.has_universe(universe.var):
        raise ValueError(
            f"{args.universe} is not the universe the model was trained on ({len(universe.var):,} vs "
            f"{len(model.universe):,} regions)"
        )
    table = read_metadata(args.metadata)
    names = table["file_name"].tolist()
    collection = model.to_anndata()
    missing = [n for n in names if n not in collection.obs_names]
    if missing:
        if args.beds is None:
            raise ValueError(
                f"{len(missing)} set(s) of {args.metadata} are not in the model (give their folder with --beds): "
                f"{missing[:10]}"
            )
        unseen = model.tokenize([Path(args.beds) / n for n in missing])
        unseen.obsm["X_bedspace"] = model.embed(unseen)
        unseen.X = sp.csr_matrix(unseen.shape, dtype=np.float32)
        collection = ad.concat([collection, unseen], join="outer", uns_merge="first", merge="first")
    adata = collection[names].copy()
    adata.obs = match_metadata(table, names)
    bs.tl.distances(adata, n_neighbors=args.n_neighbors)
    write_h5ad_atomic(adata, Path(args.output))
    print(
        f"wrote {args.output}: {len(names)} sets × {len(model.labels)} labels and the set–set graph, with the model "
        "(an .h5ad file, whatever its name)",
        file=sys.stderr,
    )


def search(args: argparse.Namespace) -> None:
    import bedspace as bs

    adata = read_h5ad_checked(Path(args.distances), "distances file")
    model = bs.BEDSpaceModel.from_anndata(adata)
    result = model.search(args.query, search_type=args.type, top_k=args.n, field=args.field)
    if args.type != "r2l":
        labels = [c for c in np.atleast_1d(model.params.get("labels", [])) if c in result.columns]
        keep = ["rank", "name", "score", *labels] if labels else ["rank", "name", "score"]
        result = result[(["query"] if "query" in result.columns else []) + keep]
    result = result.assign(score=result["score"].round(4))
    if args.format == "json":
        print(json.dumps(result.to_dict(orient="records"), indent=1, default=str))
    elif args.format == "tsv":
        print(result.to_csv(sep="\t", index=False), end="")
    else:
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print(result.to_string(index=False))
