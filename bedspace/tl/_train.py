"""``bs.tl.train``: the joint embedding of region sets, regions and labels."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
from tqdm.auto import tqdm

from .. import _logging as logg
from .._engine import native
from .._engine import starspace as starspace_engine
from .._formats.starspace import place_symbols, read_starspace_tsv, write_training_file
from .._keys import Keys, store
from .._model import BEDSpaceModel
from .._parallel import available_cores
from .._params import BACKENDS, DEFAULTS, TrainParams, check_threads
from .._training import TrainingExamples, collection_matrix, training_examples
from .._universe import Universe


def train(
    adata: ad.AnnData,
    *,
    labels: list[str] | str,
    dim: int = DEFAULTS.dim,
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    neg_search_limit: int = DEFAULTS.neg_search_limit,
    max_neg_samples: int = DEFAULTS.max_neg_samples,
    margin: float = DEFAULTS.margin,
    batch_size: int = DEFAULTS.batch_size,
    loss: Literal["hinge", "softmax"] = DEFAULTS.loss,
    exclude_positives: bool | None = None,
    dropout: float = DEFAULTS.dropout,
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
        Embedding dimension, passes over the data, initial learning rate (finite, > 0; decays linearly to 0).
    neg_search_limit
        Negative labels sampled per batch (StarSpace ``-negSearchLimit``; BEDspace used 5).
    max_neg_samples
        At most this many margin-violating negatives are used per example (``-maxNegSamples``).
    margin
        Hinge-loss margin on cosine similarity (finite, >= 0).
    batch_size
        Examples per batch (>= 1); a batch shares its negatives.
    loss
        ``"hinge"`` (StarSpace's default) or ``"softmax"`` (sampled softmax over the positive and negatives).
    exclude_positives
        Never use any of an example's own labels as its negative. ``None`` (default): ``True`` with the built-in
        engine and ``False`` with StarSpace, which only excludes the label drawn as positive (so a set labelled
        ``organ=blood`` and ``cell_class=T cell`` may be pushed away from ``cell_class=T cell`` while learning
        ``organ=blood``). ``False`` with the built-in engine reproduces StarSpace.
    dropout
        Share of a set's regions left out, afresh, at every visit (StarSpace ``-dropoutLHS``), in [0, 1).
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
        ``params`` (every option above, the label columns, backend, threads, seed, number of examples),
        ``labels`` (DataFrame ``field``, ``value``, indexed ``field=value``), ``label_vectors`` (labels × ``dim``,
        rows aligned with ``labels``), ``loss`` (per epoch) and ``universe`` (name, size, chromosome sizes); with
        the default key, next to what :func:`bedspace.pp.tokenize` recorded there.

    Raises
    ------
    ValueError
        An option out of range (named), nothing to train on, or a training that diverged (non-finite vectors).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if exclude_positives is None:
        exclude_positives = backend == "native"
    elif exclude_positives and backend == "starspace":
        raise ValueError(
            "exclude_positives=True: the StarSpace binary cannot exclude all of an example's labels from its "
            "negatives; leave it out (None) or use the built-in engine"
        )
    params = TrainParams.from_options(
        dim=dim,
        epochs=epochs,
        lr=lr,
        neg_search_limit=neg_search_limit,
        max_neg_samples=max_neg_samples,
        margin=margin,
        batch_size=batch_size,
        loss=loss,
        exclude_positives=exclude_positives,
        dropout=dropout,
    )
    threads = check_threads(n_threads) or available_cores()
    keys = Keys(key_added)
    binary = starspace_engine.find_binary(starspace) if backend == "starspace" else None
    adata = adata.copy() if copy else adata
    universe = Universe.from_anndata(adata)
    labels = [labels] if isinstance(labels, str) else list(labels)
    examples = training_examples(adata, labels)

    bar = tqdm(total=params.epochs, desc=f"training ({backend})", unit="epoch")

    def progress(epoch: int, value: float) -> None:
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update(1)

    try:
        if backend == "native":
            region_vectors, label_vectors, losses = native.train(
                native.TrainingData(
                    indptr=examples.indptr,
                    indices=examples.indices,
                    label_ptr=examples.assignment.ptr,
                    label_idx=examples.assignment.idx,
                    n_regions=examples.n_regions,
                    n_labels=len(examples.labels),
                ),
                params,
                n_threads=threads,
                random_state=random_state,
                progress=progress,
            )
        else:
            region_vectors, label_vectors, losses = _train_starspace(
                universe, examples, binary, params, threads, progress
            )
    finally:
        bar.close()

    # as in StarSpace, a region or label that no training example has is not in the model
    region_vectors[examples.region_counts() == 0] = 0
    label_vectors[examples.label_counts() == 0] = 0
    record = {
        "labels": labels,
        **params.record(),
        "backend": backend,
        "n_threads": threads,
        "random_state": int(random_state),
        "n_examples": examples.n_examples,
    }
    # the model checks every vector is finite: a diverged run is an error here, not NaN scores later
    model = BEDSpaceModel(universe, region_vectors, examples.labels, label_vectors, params=record, loss=losses)
    X = collection_matrix(adata)
    in_training = np.zeros(adata.n_obs, bool)
    in_training[examples.rows] = True

    logg.info(
        f"trained {adata.n_vars} regions and {len(examples.labels)} labels on {examples.n_examples} sets ({backend})"
    )
    model.write_into(adata, key_added)
    logg.added(keys.region_vectors, "region vectors", "varm")
    store(adata, "obsm", keys.set_vectors, model.embed_rows(X.indptr, X.indices), "set vectors")
    store(adata, "obs", keys.in_training, in_training, "training examples")
    logg.added(keys.record, "params, labels, label_vectors, loss, universe", "uns")
    return adata if copy else None


def _train_starspace(universe: Universe, examples: TrainingExamples, binary, params: TrainParams, threads, progress):
    """Run the StarSpace binary in a fresh folder and read its ``.tsv`` back into our row order."""
    with tempfile.TemporaryDirectory(prefix="bedspace-starspace-") as folder:
        workdir = Path(folder)
        write_training_file(
            workdir / "train.txt",
            region_tokens=universe.region_tokens,
            label_tokens=examples.labels.tokens(),
            indptr=examples.indptr,
            indices=examples.indices,
            label_ptr=examples.assignment.ptr,
            label_idx=examples.assignment.idx,
        )
        tsv, losses = starspace_engine.run_training(
            binary, workdir / "train.txt", workdir, params, n_threads=threads, progress=progress
        )
        symbols, vectors = read_starspace_tsv(tsv)
    region_vectors, label_keys, found = place_symbols(symbols, vectors, universe.region_tokens)
    label_vectors = np.zeros((len(examples.labels), vectors.shape[1]), np.float32)
    row_of = {key: i for i, key in enumerate(zip(examples.labels.field_of, examples.labels.values, strict=True))}
    for key, vector in zip(label_keys, found, strict=True):
        label_vectors[row_of[key]] = vector
    return region_vectors, label_vectors, losses
