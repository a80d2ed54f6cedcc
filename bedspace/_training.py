"""Training examples: which sets a run trains on, with which regions and labels — built once, for both engines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp

from ._labels import LabelAssignment, LabelTable
from ._warnings import warn


@dataclass(frozen=True)
class TrainingExamples:
    """The labelled sets with at least one region: their region rows and label rows, as CSR-like arrays."""

    labels: LabelTable
    rows: np.ndarray  # rows of the collection used as examples
    indptr: np.ndarray  # int64, n_examples + 1
    indices: np.ndarray  # int32 universe rows
    assignment: LabelAssignment  # labels of each example
    n_regions: int

    @property
    def n_examples(self) -> int:
        """Number of training examples."""
        return int(self.rows.size)

    def region_counts(self) -> np.ndarray:
        """Examples each universe region appears in."""
        return np.bincount(self.indices, minlength=self.n_regions)

    def label_counts(self) -> np.ndarray:
        """Examples carrying each label."""
        return np.bincount(self.assignment.idx, minlength=len(self.labels))


def collection_matrix(adata: ad.AnnData) -> sp.csr_matrix:
    """``adata.X`` as a CSR matrix with sorted indices (checked to be the sets × regions matrix)."""
    if not sp.issparse(adata.X):
        raise TypeError("adata.X must be the sparse sets × regions matrix of bs.pp.tokenize")
    X = adata.X.tocsr() if not isinstance(adata.X, sp.csr_matrix | sp.csr_array) else adata.X
    if not X.has_sorted_indices:
        X = X.copy()
        X.sort_indices()
    return X


def warn_left_out(names, fields: Sequence[str], has_label: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
    """The sets to train on (positions): those with a label and a region; a warning naming the others.

    Raises a ValueError when there is none.
    """
    unlabelled = names[~has_label].tolist()
    if unlabelled:
        warn(
            f"{len(unlabelled)} set(s) have no value in {fields} and are left out of training (they still get an "
            f"embedding): {unlabelled[:10]}"
        )
    empty = names[has_label & (n_tokens == 0)].tolist()
    if empty:
        warn(f"{len(empty)} labelled set(s) overlap no universe region and are left out of training: {empty[:10]}")
    rows = np.flatnonzero(has_label & (n_tokens > 0))
    if rows.size == 0:
        raise ValueError(f"nothing to train on: no set has both a label in {fields} and a universe region")
    return rows


def training_examples(adata: ad.AnnData, fields: Sequence[str] | str) -> TrainingExamples:
    """The training examples of a tokenized collection; sets without a label or a region are left out, with a warning."""
    fields = [fields] if isinstance(fields, str) else list(fields)
    table, assignment = LabelTable.from_obs(adata.obs, fields)
    X = collection_matrix(adata)
    n_tokens = np.diff(X.indptr)
    has_label = assignment.counts() > 0
    rows = warn_left_out(adata.obs_names, fields, has_label, n_tokens)
    sub = X if rows.size == X.shape[0] else X[rows]  # every set: no copy of the collection's tokens
    return TrainingExamples(
        labels=table,
        rows=rows,
        indptr=sub.indptr.astype(np.int64),
        indices=sub.indices.astype(np.int32, copy=False),
        assignment=assignment.of(rows),
        n_regions=adata.n_vars,
    )
