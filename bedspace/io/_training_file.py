"""``bs.io.write_starspace``: a tokenized collection as a StarSpace training file (the ``preprocess`` output)."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad

from .._formats.starspace import write_training_file
from .._training import training_examples
from .._universe import Universe


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
    examples = training_examples(adata, labels)
    path = Path(path)
    write_training_file(
        path,
        region_tokens=Universe.from_anndata(adata).region_tokens,
        label_tokens=examples.labels.tokens(),
        indptr=examples.indptr,
        indices=examples.indices,
        label_ptr=examples.assignment.ptr,
        label_idx=examples.assignment.idx,
    )
    return path
