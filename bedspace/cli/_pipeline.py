"""The four commands users know: ``preprocess``, ``train``, ``distances``, ``search`` (thin over the Python API).

What the steps pass to each other lives in the files they write: ``preprocess`` writes the StarSpace training
file and, beside it, a companion ``.bedspace.h5ad`` (universe, metadata, tokens, labels and the sha256 of the
training file); ``train`` checks that the training file is the one its companion describes; ``distances``
writes an ``.h5ad`` holding the model and the sets, from which ``search`` answers every search type.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .._keys import DEFAULT
from .._outputs import bedspace_h5ad, check_replace, check_replace_folder, naming_full_disk, output_file, write_h5ad

COMPANION_SUFFIX = ".bedspace.h5ad"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def companion_of(training_file: Path) -> Path:
    """The tokenized collection written beside a training file, so later steps find universe and labels."""
    return training_file.with_name(training_file.name + COMPANION_SUFFIX)


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_h5ad_checked(path: Path, what: str):
    """Read an .h5ad bedspace wrote; anything else (a pickle, a text file) is refused before it is opened."""
    import anndata as ad

    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} must be a file, {path} is a folder")
    with open(path, "rb") as handle:
        if handle.read(8) != HDF5_MAGIC:
            raise ValueError(f"{path} is not a {what} written by bedspace (expected an HDF5/.h5ad file)")
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py raises many kinds for a damaged file; the user needs its name
        raise ValueError(f"{path}: damaged or incomplete {what} ({type(err).__name__}: {err})") from None


def write_h5ad_atomic(adata, path: Path, *, overwrite: bool = False) -> None:
    """Write ``adata`` to ``path`` atomically (never half a file, never a pickle).

    An existing ``path`` is replaced only with ``overwrite`` and when it is an ``.h5ad`` bedspace wrote; a full
    disk is one error naming ``path`` (:mod:`bedspace._outputs`).
    """
    with output_file(path, overwrite=overwrite, option="--overwrite") as tmp:
        write_h5ad(adata, tmp)


def own_training_file(path: Path) -> bool:
    """Whether ``path`` is a training file ``preprocess`` wrote: its companion beside it says so."""
    return bedspace_h5ad(companion_of(path), holding="preprocess")


def refuse_replacing(outputs: dict[Path, Callable[[Path], bool]], overwrite: bool) -> None:
    """Before any work: each existing output must be bedspace's own, and ``--overwrite`` given (``output -> own``)."""
    for output, own in outputs.items():
        check_replace(output, overwrite=overwrite, own=own, option="--overwrite")


def refuse_overwriting_inputs(output: Path, inputs: dict[str, str | Path | None]) -> None:
    """An output must not be one of the command's own inputs (``-o meta.csv`` would destroy the metadata)."""
    if output.exists() and output.is_dir():
        raise IsADirectoryError(f"--output {output} is a folder; give a file name")
    for option, value in inputs.items():
        if value is None or not Path(value).exists():
            continue
        source = Path(value).resolve()
        if source == output.resolve():
            raise ValueError(f"--output {output} is the same file as {option}: it would overwrite its own input")
        if source.is_dir() and source in output.resolve().parents:
            raise ValueError(f"--output {output} is inside {option} {value}: it would change its own input")


def preprocess(args: argparse.Namespace) -> None:
    import bedspace as bs

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    output = Path(args.output)
    inputs = {"--input": args.input, "--metadata": args.metadata, "--universe": args.universe}
    refuse_overwriting_inputs(output, inputs)
    refuse_overwriting_inputs(companion_of(output), inputs)
    refuse_replacing({output: own_training_file, companion_of(output): bedspace_h5ad}, args.overwrite)
    adata = bs.pp.tokenize(args.input, args.universe, metadata=args.metadata, n_jobs=args.jobs)
    with output_file(output, overwrite=args.overwrite, own=own_training_file, option="--overwrite") as tmp:
        bs.io.write_starspace(adata, tmp, labels=labels)
    adata.uns[DEFAULT]["preprocess"] = {
        "labels": labels,
        "input": str(Path(args.input).resolve()),
        "metadata": str(Path(args.metadata).resolve()),
        "universe": str(Path(args.universe).resolve()),
        "training_file": output.name,
        "training_file_sha256": sha256_of(output),
    }
    # the companion goes second: a crash between the two writes leaves a training file its companion does not
    # describe, which train refuses (the checksum differs) rather than training on stale tokens
    write_h5ad_atomic(adata, companion_of(output), overwrite=args.overwrite)
    lines = _training_lines(adata, labels)
    left_out = f"; {adata.n_obs - lines} set(s) without a label or a region left out" if lines < adata.n_obs else ""
    print(
        f"wrote {output} ({lines} training lines of {adata.n_obs} sets, labels {labels}{left_out}) and "
        f"{companion_of(output).name} (universe, metadata and tokens for the next steps)",
        file=sys.stderr,
    )


def _training_lines(adata, labels: list[str]) -> int:
    """The sets written as training lines: those with a label in ``labels`` and a universe region."""
    from bedspace._labels import LabelTable

    _, assignment = LabelTable.from_obs(adata.obs, labels, warn_numbers=False)
    return int(((assignment.counts() > 0) & (adata.obs["n_tokens"].to_numpy() > 0)).sum())


def train(args: argparse.Namespace) -> None:
    import bedspace as bs

    training_file = Path(args.input)
    if not training_file.exists():
        raise FileNotFoundError(f"training file not found: {training_file}")
    companion = companion_of(training_file)
    if not companion.exists():
        raise FileNotFoundError(
            f"{companion.name} is missing beside {training_file}: run `bedspace preprocess ... --output "
            f"{training_file}` first"
        )
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it (an old model is never continued)")
    from .._folder import is_model_folder

    check_replace_folder(output, overwrite=args.overwrite, own=is_model_folder, option="--overwrite")
    adata = read_h5ad_checked(companion, "preprocessed collection")
    record = adata.uns.get(DEFAULT, {}).get("preprocess", {})
    if "labels" not in record:
        raise ValueError(f"{companion} was not written by bedspace preprocess (no preprocess record)")
    expected = record.get("training_file_sha256")
    if expected is None or sha256_of(training_file) != expected:
        raise ValueError(
            f"{training_file} is not the training file that {companion.name} describes (it was changed after "
            "preprocess, or preprocess was interrupted): run bedspace preprocess again"
        )
    starspace = args.path_to_starspace
    bs.tl.train(
        adata,
        labels=[str(label) for label in np.atleast_1d(record["labels"])],
        space=args.space,
        dim=args.dim,
        epochs=args.epochs,
        lr=args.lr,
        neg_search_limit=args.neg_search_limit,
        loss=args.loss,
        dropout=args.dropout,
        backend="starspace" if starspace else "native",
        starspace=starspace,
        n_threads=args.threads,
        random_state=args.seed,
        calibrate=args.calibrate,
    )
    with naming_full_disk(output):
        bs.BEDSpaceModel.from_anndata(adata).save(output, overwrite=args.overwrite)
    loss = adata.uns[DEFAULT]["loss"]
    if adata.uns[DEFAULT]["params"]["space"] == "annotator":
        trained = f"fitted the annotator's space ({adata.varm[DEFAULT].shape[1]} dimensions)"
    else:
        engine = "the StarSpace binary" if starspace else "the built-in engine"
        trained = f"trained StarSpace's objective with {engine}: loss {loss[0]:.4f} -> {loss[-1]:.4f}"
    print(
        f"checked {training_file.name} against {companion.name}; {trained}; model written to {output}",
        file=sys.stderr,
    )


def distances(args: argparse.Namespace) -> None:
    import scipy.sparse as sp

    import bedspace as bs
    from bedspace._metadata import match_metadata, read_metadata
    from bedspace._reference import ReferenceSets
    from bedspace._universe import Universe

    output = Path(args.output)
    refuse_overwriting_inputs(output, {"--metadata": args.metadata, "--universe": args.universe, "--input": args.input})
    refuse_replacing({output: bedspace_h5ad}, args.overwrite)
    model = bs.BEDSpaceModel.load(args.input)
    model.universe.check_same(Universe.load(args.universe), what=f"--universe {args.universe}")
    table = read_metadata(args.metadata)
    names = table["file_name"].tolist()
    known = model.reference
    missing = [n for n in names if known is None or known.position(n) is None]
    if missing and args.beds is None:
        raise ValueError(
            f"{len(missing)} set(s) of {args.metadata} are not in the model (give their folder with --beds): "
            f"{missing[:10]}"
        )
    vectors = np.zeros((len(names), model.dim), np.float32)
    # the sets' tokens come along when the model has them, so that search can use the default annotator
    tokens = [None] * len(names)
    for i, name in enumerate(names):
        if name not in missing:
            vectors[i] = known.vectors[known.position(name)]
            tokens[i] = None if known.tokens is None else known.tokens.read([known.position(name)]).to_csr()
    if missing:
        folder = Path(args.beds).resolve()
        outside = [n for n in missing if folder not in (folder / n).resolve().parents]
        if outside:  # "../secret.bed" or "/etc/x.bed" in a metadata row: never a file outside --beds
            raise ValueError(
                f"{len(outside)} file_name(s) of {args.metadata} lead outside --beds {args.beds}: {outside[:10]}; "
                "give the files' names within that folder"
            )
        unseen = model.tokenize([Path(args.beds) / n for n in missing])
        rows = [names.index(n) for n in missing]
        vectors[rows] = model.embed(unseen)
        for row, i in enumerate(rows):
            tokens[i] = unseen.X[row]
    carried = None if any(t is None for t in tokens) else sp.vstack(tokens, format="csr")
    metadata = match_metadata(table, names)
    if known is not None and known.annotator is not None and names == known.names.tolist():
        # the model's own sets, in its order: its annotator (fitted and calibrated on them) comes along
        reference = ReferenceSets(metadata, vectors, known.tokens, annotator=known.annotator)
    else:
        reference = ReferenceSets(metadata, vectors, carried)
        if carried is not None and reference.label_codes(model.label_table):
            seed = int(model.params.get("random_state", 0) or 0)
            reference.fit_annotator(model.label_table, random_state=seed, chromosomes=model.universe.chromosome_codes)
    adata = model.with_reference(reference).to_anndata()
    bs.tl.distances(adata, n_neighbors=args.n_neighbors)
    write_h5ad_atomic(adata, output, overwrite=args.overwrite)
    print(
        f"wrote {args.output}: {len(names)} sets × {len(model.labels)} labels and the set–set graph, with the model "
        "(an .h5ad file, whatever its name)",
        file=sys.stderr,
    )


def search(args: argparse.Namespace) -> None:
    from bedspace._model import BEDSpaceModel

    if args.type == "l2r" and len(args.query) > 1:
        raise ValueError(
            f"-t l2r takes one label, got {len(args.query)} values {args.query[:5]}; quote a label with spaces "
            '(-q "cell_type=T cell")'
        )
    source = Path(args.distances)
    if source.is_dir():  # a model folder (from train): opened without reading what the search does not need
        model = BEDSpaceModel.load(source)
    else:
        model = BEDSpaceModel.from_anndata(read_h5ad_checked(source, "distances file"))
    if args.type != "r2l" and args.min_probability:
        raise ValueError("--min-probability is an option of -t r2l only")
    if args.type == "r2l" and args.columns is not None:
        raise ValueError("--columns is an option of -t l2r and r2r only (r2l lists labels, which have no metadata)")
    if args.type == "l2r" and getattr(args, "assembly", None) is not None:
        raise ValueError("--assembly is an option of -t r2l and r2r only (the genome build of query files)")
    options = {"min_probability": args.min_probability} if args.type == "r2l" else {}
    if args.columns is not None:  # the same table as bs.tl.search(..., obs_columns=...)
        names = [c.strip() for c in args.columns.split(",") if c.strip()]
        options["obs_columns"] = "all" if names == ["all"] else names
    if getattr(args, "assembly", None) is not None:  # lifted onto the reference's build first
        options["assembly"] = args.assembly
    # one value: the table of one query (or of a folder or pattern: a query column when it holds several files);
    # several values: always a query column, as for a list in Python
    query = args.query[0] if len(args.query) == 1 else list(args.query)
    if any(getattr(args, name, None) not in (None, False) for name in ("explain", "label", "overwrite")):
        from ._explain import explain  # why the query got its label: regions, sets, a BED file

        return explain(model, query, args, options)
    result = model.search(query, search_type=args.type, top_k=args.n, field=args.field, method=args.method, **options)
    numbers = ("score", "probability", "cosine", "shared_labels")
    result = result.assign(**{c: result[c].round(4) for c in numbers if c in result.columns})
    if args.format == "json":  # a missing metadata value is null (json has no NaN)
        records = result.astype(object).where(result.notna(), None).to_dict(orient="records")
        print(json.dumps(records, indent=1, default=str))
    elif args.format == "tsv":
        print(result.to_csv(sep="\t", index=False), end="")
    else:
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print(result.to_string(index=False))
