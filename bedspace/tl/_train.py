"""``bs.tl.train``: the joint embedding of region sets, regions and labels."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from .. import _logging as logg
from .._engine import native
from .._engine import starspace as starspace_engine
from .._parallel import available_cores
from .._formats.starspace import read_starspace_tsv, training_examples, vectors_from_symbols, write_starspace


def train(
    adata: ad.AnnData,
    *,
    labels: list[str] | str,
    dim: int = 100,
    epochs: int = 50,
    lr: float = 0.05,
    neg_search_limit: int = 5,
    max_neg_samples: int = 10,
    margin: float = 0.05,
    batch_size: int = 5,
    loss: Literal["hinge", "softmax"] = "hinge",
    exclude_positives: bool = True,
    dropout: float = 0.0,
    backend: Literal["native", "starspace"] = "native",
    starspace: str | os.PathLike | None = None,
    n_threads: int | None = None,
    random_state: int = 0,
    key_added: str = "bedspace",
    copy: bool = False,
) -> ad.AnnData | None:
    """Learn one vector space for region sets, universe regions and metadata labels (StarSpace trainMode 0).

    Every set with at least one label and one region is a training example: its vector (the normalised sum of
    its region vectors) is pulled towards one of its labels, drawn at random at every visit, and pushed away from
    sampled other labels. Afterwards every set — labelled or not — is embedded as the normalised sum of its
    region vectors, exactly as StarSpace's ``embed_doc`` does.

    Parameters
    ----------
    adata
        A tokenized collection (:func:`bedspace.pp.tokenize`).
    labels
        The ``.obs`` column(s) whose values are the labels. Labels are namespaced by column (``organ=blood``),
        so the same value in two columns stays two labels; any value is fine (spaces, ``+``, ``/``, ``:``).
        Missing values are skipped; a set with no label is left out of training with a warning.
    dim, epochs, lr
        Embedding dimension, passes over the data, initial learning rate (decays linearly towards 0).
    neg_search_limit
        Negative labels sampled per batch (StarSpace ``-negSearchLimit``; BEDspace used 5).
    max_neg_samples
        At most this many margin-violating negatives are used per example (``-maxNegSamples``).
    margin
        Hinge-loss margin on cosine similarity.
    batch_size
        Examples per batch; a batch shares its negatives.
    loss
        ``"hinge"`` (StarSpace's default) or ``"softmax"`` (sampled softmax over the positive and negatives).
    exclude_positives
        Never use any of an example's own labels as its negative. StarSpace only excludes the label drawn as
        positive (``False`` reproduces it), so a set labelled ``organ=blood`` and ``cell_class=T cell`` may be
        pushed away from ``cell_class=T cell`` while learning ``organ=blood``.
    dropout
        Share of a set's regions left out, afresh, at every visit (StarSpace ``-dropoutLHS``): the set is seen
        as many random subsets of itself, as an unseen experiment of the same kind would be.
    backend
        ``"native"``: the built-in numba engine, nothing to install. ``"starspace"``: the real StarSpace binary.
    starspace
        Path to the StarSpace binary or its folder (``backend="starspace"``); default ``$BEDSPACE_STARSPACE``.
    n_threads
        Training threads (default: all cores). The native engine runs lock-free (Hogwild) with several threads;
        with ``n_threads=1`` it is bit-for-bit reproducible for a given ``random_state``. StarSpace has no seed.
    random_state
        Seed of the native engine (initialisation, order, sampling).
    key_added
        Where results go (see Returns).
    copy
        Return a trained copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the trained copy when ``copy=True``. Writes:

    ``adata.varm[key_added]``
        Region (token) vectors, regions × ``dim`` (float32). Regions in no training set are 0.
    ``adata.obsm["X_" + key_added]``
        Set vectors, sets × ``dim``: the L2-normalised sum of each set's region vectors.
    ``adata.obs[key_added + "_in_training"]``
        Whether the set was a training example.
    ``adata.uns[key_added]``
        ``params`` (every option above), ``labels`` (DataFrame ``field``, ``value``, indexed ``field=value``),
        ``label_vectors`` (labels × ``dim``, rows aligned with ``labels``) and ``loss`` (per epoch); with the
        default key, next to what :func:`bedspace.pp.tokenize` recorded there.
    """
    adata = adata.copy() if copy else adata
    if not sp.issparse(adata.X):
        raise TypeError("adata.X must be the sparse sets × regions matrix of bs.pp.tokenize")
    if backend not in ("native", "starspace"):
        raise ValueError(f"backend must be 'native' or 'starspace', got {backend!r}")
    if loss not in ("hinge", "softmax"):
        raise ValueError(f"loss must be 'hinge' or 'softmax', got {loss!r}")
    for name, value in (("dim", dim), ("epochs", epochs), ("neg_search_limit", neg_search_limit)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    binary = starspace_engine.find_binary(starspace) if backend == "starspace" else None
    labels = [labels] if isinstance(labels, str) else list(labels)
    params = native.Hyperparameters(
        dim=int(dim),
        epochs=int(epochs),
        lr=float(lr),
        neg_search_limit=int(neg_search_limit),
        max_neg_samples=int(max_neg_samples),
        margin=float(margin),
        batch_size=int(batch_size),
        loss=loss,
        exclude_positives=bool(exclude_positives),
        dropout=float(dropout),
    )
    threads = int(n_threads) if n_threads is not None else available_cores()
    X = adata.X.tocsr()
    X.sort_indices()
    assignment, rows = training_examples(adata, labels)
    train_X = X[rows]
    train_label_idx = np.concatenate([assignment.idx[assignment.ptr[r] : assignment.ptr[r + 1]] for r in rows])

    bar = tqdm(total=params.epochs, desc=f"training ({backend})", unit="epoch")

    def progress(epoch: int, value: float) -> None:
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update(1)

    try:
        if backend == "native":
            data = native.TrainingData(
                indptr=train_X.indptr.astype(np.int64),
                indices=train_X.indices.astype(np.int32, copy=False),
                label_ptr=np.concatenate([[0], np.cumsum(assignment.counts()[rows])]).astype(np.int64),
                label_idx=train_label_idx,
                n_regions=adata.n_vars,
                n_labels=len(assignment.table),
            )
            region_vectors, label_vectors, losses = native.train(
                data, params, n_threads=threads, random_state=random_state, progress=progress
            )
        else:
            if params.exclude_positives:
                raise ValueError("the StarSpace binary cannot exclude all true labels: pass exclude_positives=False")
            region_vectors, label_vectors, losses = _train_starspace(
                adata, labels, assignment.table, binary, params, threads, progress
            )
    finally:
        bar.close()

    # as in StarSpace, a region or label that no training example has is not in the model
    region_vectors[np.bincount(train_X.indices, minlength=adata.n_vars) == 0] = 0
    label_vectors[np.bincount(train_label_idx, minlength=len(assignment.table)) == 0] = 0

    adata.varm[key_added] = region_vectors
    adata.obsm["X_" + key_added] = native.set_vectors(region_vectors, X.indptr.astype(np.int64), X.indices)
    in_training = np.zeros(adata.n_obs, bool)
    in_training[rows] = True
    adata.obs[key_added + "_in_training"] = in_training
    record = dict(adata.uns.get(key_added, {}))
    record.update(
        params={
            "labels": labels,
            **{k: v for k, v in vars(params).items() if k not in ("max_norm", "init_std")},
            "backend": backend,
            "n_threads": threads,
            "random_state": int(random_state),
            "n_examples": int(rows.size),
        },
        labels=assignment.table.copy(),
        label_vectors=label_vectors,
        loss=np.asarray(losses, dtype=np.float64),
    )
    adata.uns[key_added] = record
    logg.info(f"trained {adata.n_vars} regions and {len(assignment.table)} labels on {rows.size} sets ({backend})")
    logg.added(key_added, "region vectors", "varm")
    logg.added("X_" + key_added, "set vectors", "obsm")
    logg.added(key_added + "_in_training", "training examples", "obs")
    logg.added(key_added, "params, labels, label_vectors, loss", "uns")
    return adata if copy else None


def _train_starspace(adata, labels, table: pd.DataFrame, binary, params, threads, progress):
    """Run the StarSpace binary in a fresh folder and read its ``.tsv`` back into our row order."""
    with tempfile.TemporaryDirectory(prefix="bedspace-starspace-") as folder:
        workdir = Path(folder)
        train_file = write_starspace(adata, workdir / "train.txt", labels=labels)
        tsv, losses = starspace_engine.run_training(
            binary, train_file, workdir, params, n_threads=threads, progress=progress
        )
        symbols, vectors = read_starspace_tsv(tsv)
    region_vectors, label_vectors = vectors_from_symbols(symbols, vectors, adata.var, table)
    return region_vectors, label_vectors, losses
