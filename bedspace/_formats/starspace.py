"""StarSpace's file formats: the fastText-style training file and the ``.tsv`` model."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._atomic import atomic_path
from .._labels import LABEL_PREFIX, LabelAssignment, assign_labels, label_token, parse_label_token, region_token
from .._warnings import BEDSpaceWarning


def region_tokens(var: pd.DataFrame) -> list[str]:
    """StarSpace tokens of universe regions (``chr1_100_200``)."""
    return [
        region_token(c, s, e)
        for c, s, e in zip(var["chrom"].astype(str), var["start"].tolist(), var["end"].tolist(), strict=True)
    ]


def training_examples(adata: ad.AnnData, labels: list[str] | str) -> tuple[LabelAssignment, np.ndarray]:
    """Labels of every set, and the sets that can be trained on (≥ 1 label and ≥ 1 region); warns about the rest."""
    assignment = assign_labels(adata.obs, labels)
    n_tokens = np.diff(adata.X.indptr)
    has_label = assignment.counts() > 0
    usable = has_label & (n_tokens > 0)
    unlabelled = adata.obs_names[~has_label].tolist()
    if unlabelled:
        warnings.warn(
            f"{len(unlabelled)} set(s) have no value in {labels} and are left out of training (they still get an "
            f"embedding): {unlabelled[:10]}",
            BEDSpaceWarning,
            stacklevel=3,
        )
    empty = adata.obs_names[has_label & (n_tokens == 0)].tolist()
    if empty:
        warnings.warn(
            f"{len(empty)} labelled set(s) overlap no universe region and are left out of training: {empty[:10]}",
            BEDSpaceWarning,
            stacklevel=3,
        )
    if not usable.any():
        raise ValueError(f"nothing to train on: no set has both a label in {labels} and a universe region")
    return assignment, np.flatnonzero(usable)


def write_starspace(adata: ad.AnnData, path: str | os.PathLike, *, labels: list[str] | str) -> Path:
    """Write a tokenized collection as a StarSpace training file (the ``preprocess`` output).

    One line per set that has at least one region and one label: its universe regions as ``chr1_100_200``
    tokens, then its labels as ``__label__<field>=<value>`` tokens. Field and value are percent-encoded, so
    labels with spaces, commas, ``+``, ``/`` or ``:`` stay one token and the same value in two columns stays two
    labels. No token holds a ``:`` (StarSpace would read a weight), no token is empty, no line is empty or has
    trailing spaces. Sets without a label or a region are left out with a warning.

    Parameters
    ----------
    adata
        A tokenized collection (:func:`bedspace.pp.tokenize`).
    path
        Where to write; written atomically.
    labels
        The ``.obs`` columns whose values are the labels.

    Returns
    -------
    The path written.
    """
    assignment, rows = training_examples(adata, labels)
    tokens = np.array(region_tokens(adata.var), dtype=object)
    label_tokens = np.array(
        [label_token(f, v) for f, v in assignment.table[["field", "value"]].itertuples(index=False)]
    )
    X = adata.X.tocsr()
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        for row in rows:
            regions = tokens[X.indices[X.indptr[row] : X.indptr[row + 1]]]
            set_labels = label_tokens[assignment.idx[assignment.ptr[row] : assignment.ptr[row + 1]]]
            out.write(" ".join(regions))
            out.write(" ")
            out.write(" ".join(set_labels))
            out.write("\n")
    return path


def read_starspace_tsv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a StarSpace ``.tsv`` model: symbols and their vectors (float32)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"StarSpace model not found: {path}")
    symbols: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").rstrip("\t ").split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}, line {line_no}: expected 'symbol<TAB>v1<TAB>...', got {line[:80]!r}")
            if dim is None:
                dim = len(fields) - 1
            elif len(fields) - 1 != dim:
                raise ValueError(f"{path}, line {line_no}: {len(fields) - 1} values, the first line had {dim}")
            try:
                rows.append(np.array(fields[1:], dtype=np.float32))
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: vector values must be numbers") from None
            symbols.append(fields[0])
    if not symbols:
        raise ValueError(f"{path}: empty StarSpace model")
    return symbols, np.vstack(rows)


def write_starspace_tsv(symbols: list[str], vectors: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a StarSpace ``.tsv`` model (6 significant digits, as StarSpace writes it)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        for symbol, vector in zip(symbols, vectors, strict=True):
            out.write(symbol + "\t" + "\t".join(f"{x:.6g}" for x in vector) + "\n")
    return path


def vectors_from_symbols(
    symbols: list[str], vectors: np.ndarray, var: pd.DataFrame, table: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Place StarSpace's rows: region tokens onto ``var``'s rows, labels onto ``table``'s (or build the table)."""
    row_of_region = {token: i for i, token in enumerate(region_tokens(var))}
    region_vectors = np.zeros((len(var), vectors.shape[1]), np.float32)
    label_rows, label_keys, unknown = [], [], []
    for k, symbol in enumerate(symbols):
        if symbol.startswith(LABEL_PREFIX):
            label_rows.append(k)
            label_keys.append(parse_label_token(symbol))
        elif symbol in row_of_region:
            region_vectors[row_of_region[symbol]] = vectors[k]
        else:
            unknown.append(symbol)
    if unknown:
        raise ValueError(
            f"{len(unknown)} region token(s) of the StarSpace model are not regions of this universe "
            f"(expected tokens like {next(iter(row_of_region))!r}): {unknown[:5]}"
        )
    built = table is None
    if built:
        table = pd.DataFrame(label_keys, columns=["field", "value"])
        table.index = pd.Index((table["field"] + "=" + table["value"]).tolist())
    row_of_label = {(f, v): i for i, (f, v) in enumerate(table[["field", "value"]].itertuples(index=False))}
    label_vectors = np.zeros((len(table), vectors.shape[1]), np.float32)
    for k, key in zip(label_rows, label_keys, strict=True):
        label_vectors[row_of_label[key]] = vectors[k]
    return (region_vectors, label_vectors, table) if built else (region_vectors, label_vectors)
