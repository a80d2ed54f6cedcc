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
from .._engine.check import check_training
from .._formats.starspace import place_symbols, read_starspace_tsv, write_training_file
from .._keys import DEFAULT, EMBEDDING_RECORD, Keys, store
from .._labels import LabelTable, without_shared_labels
from .._model import BEDSpaceModel
from .._parallel import available_cores
from .._params import BACKENDS, TrainParams, check_threads, whole_number
from .._reference import ReferenceSets
from .._space import SPACES, annotator_space, with_held_out_scores
from .._training import TrainingExamples, training_examples, warn_left_out
from .._universe import Universe
from .._warnings import warn
from ..annotate import RegionAnnotator
from ..annotate._estimator import MIN_SETS_TO_CALIBRATE
from ..annotate._tokens import CHUNK_TOKENS, TokenMatrix
from ._collection import keep_annotator, searchable


def train(
    adata: ad.AnnData,
    *,
    labels: list[str] | str,
    space: Literal["annotator", "starspace"] | None = None,
    dim: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    neg_search_limit: int | None = None,
    max_neg_samples: int | None = None,
    margin: float | None = None,
    batch_size: int | None = None,
    loss: Literal["hinge", "softmax"] | None = None,
    exclude_positives: bool | None = None,
    dropout: float | None = None,
    backend: Literal["native", "starspace"] = "native",
    starspace: str | os.PathLike | None = None,
    n_threads: int | None = None,
    random_state: int = 0,
    sample_sets: int | None = None,
    calibrate: bool = True,
    key_added: str = DEFAULT,
    copy: bool = False,
) -> ad.AnnData | None:
    """Learn one vector space for region sets, universe regions and metadata labels.

    Two spaces can be learned (``space``):

    * ``"annotator"`` (default): the space of the default annotator's label scores. The annotator (a kernel
      ridge classifier on the sets' shared regions, see :func:`calibrate`) is fitted on the collection, and its
      scores, a linear form of a set's regions, become the vectors: one dimension per label, a region's vector
      its weight for each label, a label's vector its axis, a set's vector its scores of each field's labels
      scaled to length 1 (the fields side by side, the whole of length 1). The label vectors then rank a set's
      labels as the annotator does, and every search can answer from one vector per set, without the sets'
      regions (``benchmarks/evaluate.py`` measures it beside StarSpace's objective). Fitted in closed form:
      no epochs, no seed dependence.
    * ``"starspace"``: StarSpace trainMode 0. Every set with at least one label and one region is a training
      example: its vector (the normalised sum of its region vectors) is pulled towards one of its labels, drawn
      at random at every visit, and pushed away from sampled other labels; ``dim``, ``epochs``, ``lr`` and the
      options after them are its hyperparameters. ``backend="starspace"`` runs the StarSpace binary itself.

    Afterwards every set — labelled or not — is embedded from its region vectors (in the StarSpace space, as
    StarSpace's ``embed_doc`` does).

    ``adata`` may be opened backed (``bs.pp.tokenize(..., out=...)`` returns it so): the training sets are read
    from the file a chunk of rows at a time and every set is embedded a chunk at a time, so memory is the
    training sets' tokens, not the collection's. For a collection too large for memory, train on a stratified
    sample (``sample_sets``): the labels are learned from the sample, and every set is embedded.

    Parameters
    ----------
    adata
        A tokenized collection (:func:`bedspace.pp.tokenize`).
    labels
        The ``.obs`` column(s) whose values are the labels. Labels are namespaced by column (``organ=blood``),
        so the same value in two columns stays two labels; any value is fine (spaces, ``+``, ``/``, ``:``).
        Missing values are skipped; a set with no label is left out of training with a warning.
    space
        ``"annotator"`` or ``"starspace"`` (see above). Default: ``"starspace"`` with ``backend="starspace"`` or
        when any of StarSpace's hyperparameters below is given (``dim`` to ``dropout``), ``"annotator"``
        otherwise; ``params["space"]`` records which. The hyperparameters are refused with
        ``space="annotator"``, which has none.
    dim, epochs, lr
        Embedding dimension (default 100), passes over the data (50), initial learning rate (0.05; finite, > 0;
        decays linearly to 0). StarSpace's space only, as are the options down to ``dropout``.
    neg_search_limit
        Negative labels sampled per batch (StarSpace ``-negSearchLimit``; BEDspace used 5).
    max_neg_samples
        At most this many margin-violating negatives are used per example (``-maxNegSamples``; default 10).
    margin
        Hinge-loss margin on cosine similarity (finite, >= 0; default 0.05).
    batch_size
        Examples per batch (>= 1; default 5); a batch shares its negatives.
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
        ``"native"``: the built-in engine, nothing to install. ``"starspace"``: the real StarSpace binary.
    starspace
        Path to the StarSpace binary or its folder (``backend="starspace"``); default ``$BEDSPACE_STARSPACE``.
    n_threads
        Training threads (default: all cores). The native engine runs lock-free (Hogwild) with several threads;
        with ``n_threads=1`` it is bit-for-bit reproducible for a given ``random_state``. StarSpace has no seed.
        The annotator's space is the same whatever the threads.
    random_state
        Seed of the native engine (initialisation, order, sampling), of ``sample_sets`` and of the annotator's
        sample of sets beyond 2,000.
    sample_sets
        Train on at most this many sets (a positive integer). StarSpace's space: drawn at random stratified by
        the combination of their labels: every combination of values of ``labels`` present keeps at least one
        set, and the rest are shared in proportion to the combinations' sizes. Only labelled sets with a region
        are drawn. Default (``None``): every such set. Memory then grows with the sample, not with the
        collection. A sample sees fewer examples per epoch: give it about ``epochs × n_sets / sample_sets``
        epochs, which matched training on every set within seed noise in ``benchmarks/sample.py`` (the same
        epochs on a sample of 200 or 500 of 2,000 sets lost quality). The annotator's space: the classifier is
        fitted on at most this many sets (default 2,000, a sample keeping every combination of labels beyond).
    key_added
        Where results go (see Returns).
    calibrate
        Fit the default annotator with calibrated probabilities and a domain (leave-one-out: seconds, no more
        training; see :func:`calibrate`). The annotator is fitted either way (``False``: scores, no
        probabilities); with fewer than 10 labelled sets it is not calibrated, with a message. A label field
        in which no two sets share a value (an identifier per set) cannot be calibrated: that is found before
        training, and the annotator is then fitted without calibration, with a warning naming the field.
    copy
        Return a trained copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the trained copy when ``copy=True``. Writes:

    ``adata.varm[key_added]``
        Region (token) vectors, regions × dim (float32): the annotator's space has one dimension per label.
        Regions in no training set are 0.
    ``adata.obsm["X_" + key_added]``
        Set vectors, sets × dim: the L2-normalised sum of each set's region vectors. The annotator's space:
        each field's scores and the regions block, each block scaled to its share, the whole of length 1; a set
        the classifier was fitted on adds a quarter of its leave-one-out scores to its own (see
        ``bedspace/_space.py``: otherwise every set of a label would score it alike).
    ``adata.obs[key_added + "_in_training"]``
        Whether the set was a training example (with ``sample_sets``: whether it was drawn; the annotator's
        space: whether its classifier was fitted on the set).
    ``adata.uns[key_added]``
        ``params`` (``space``, every option above that applies to it, the label columns, backend, threads,
        seed, ``sample_sets``, number of examples),
        ``labels`` (DataFrame ``field``, ``value``, indexed ``field=value``), ``label_vectors`` (labels × dim,
        rows aligned with ``labels``), ``loss`` (per epoch; empty for the annotator's space), ``universe``
        (name, size, chromosome sizes) and, for the annotator's space, ``set_space`` (``bias``: what every set
        adds to the sum of its region vectors over the square root of their number; ``blocks``: each
        dimension's field); with the default key, next to what :func:`bedspace.pp.tokenize` recorded there; and
        ``annotator``, the default annotator fitted on the collection's sets (see :func:`calibrate`).

    Raises
    ------
    ValueError
        An option out of range (named), a StarSpace option with the annotator's space, nothing to train on, a
        ``sample_sets`` smaller than the number of label combinations, or a training that diverged (non-finite
        vectors).
    """
    starspace_options = {
        "dim": dim, "epochs": epochs, "lr": lr, "neg_search_limit": neg_search_limit,
        "max_neg_samples": max_neg_samples, "margin": margin, "batch_size": batch_size, "loss": loss,
        "exclude_positives": exclude_positives, "dropout": dropout,
    }  # fmt: skip
    space = _space_of(space, backend, [name for name, value in starspace_options.items() if value is not None])
    threads = check_threads(n_threads) or available_cores()
    if sample_sets is not None:
        whole_number(sample_sets, "sample_sets", expected="a positive integer or None")
    keys = Keys(key_added)
    params = _starspace_params(starspace_options, backend) if space == "starspace" else None
    binary = starspace_engine.find_binary(starspace) if backend == "starspace" else None
    adata = adata.copy() if copy else adata
    universe = Universe.from_anndata(adata)
    labels = [labels] if isinstance(labels, str) else list(labels)
    # before any training: a calibration that cannot be fitted must not throw the trained embedding away
    calibrate = bool(calibrate) and _can_calibrate(adata, labels)
    options = {"calibrate": calibrate, "random_state": int(random_state), "chromosomes": universe.chromosome_codes}
    record = {"labels": labels, "space": space}
    if space == "annotator":
        model, in_training, annotator = _annotator_space(adata, labels, universe, sample_sets, options, record)
    else:
        model, in_training = _starspace_space(
            adata, labels, universe, params, backend, binary, threads, random_state, sample_sets, record
        )
        annotator = None
    model.write_into(adata, key_added)
    logg.added(keys.region_vectors, "region vectors", "varm")
    # every set, a chunk of rows at a time (a backed collection is never read whole)
    vectors = model.embed(adata, chunk_tokens=CHUNK_TOKENS)
    if annotator is not None:  # the annotator's examples: their own scores, and what the others make of them
        vectors = with_held_out_scores(vectors, annotator, model.label_table, model.space)
    store(adata, "obsm", keys.set_vectors, vectors, "set vectors")
    store(adata, "obs", keys.in_training, in_training, "training examples")
    logg.added(keys.record, ", ".join(EMBEDDING_RECORD + (("set_space",) if model.space is not None else ())), "uns")
    # the collection owns its annotator: fitted once (reading only the rows it needs), kept in uns
    reference = ReferenceSets(adata.obs, adata.obsm[keys.set_vectors], adata.X, annotator=annotator)
    if annotator is None:
        reference.fit_annotator(model.label_table, **options)
    keep_annotator(adata, key_added, model.with_reference(reference))
    return adata if copy else None


def _space_of(space, backend: str, given: list[str]) -> str:
    """The space to learn: as given, else StarSpace's when its backend or options (``given``) say so.

    Refused when the backend cannot learn it, or StarSpace's options are given for the annotator's space.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if space is None:
        return "starspace" if backend == "starspace" or given else "annotator"
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if space == "annotator" and backend == "starspace":
        raise ValueError("space='annotator' is fitted by bedspace itself: leave backend='starspace' out")
    if space == "annotator" and given:
        raise ValueError(
            f"{', '.join(given)}: StarSpace's options, and space='annotator' (the annotator's label scores, fitted "
            "in closed form) has none; leave them out, or give space='starspace'"
        )
    return space


def _starspace_params(options: dict, backend: str) -> TrainParams:
    """StarSpace's hyperparameters: those given, the defaults for the rest; checked."""
    options = dict(options)
    if options["exclude_positives"] is None:
        options["exclude_positives"] = backend == "native"
    elif options["exclude_positives"] and backend == "starspace":
        raise ValueError(
            "exclude_positives=True: the StarSpace binary cannot exclude all of an example's labels from its "
            "negatives; leave it out (None) or use the built-in engine"
        )
    return TrainParams.from_options(**options)


def _annotator_space(
    adata: ad.AnnData, labels: list[str], universe: Universe, sample_sets: int | None, options: dict, record: dict
) -> tuple[BEDSpaceModel, np.ndarray, RegionAnnotator]:
    """The model of the annotator's space, which sets its classifier was fitted on, and the annotator."""
    table, assignment = LabelTable.from_obs(adata.obs, labels)
    n_tokens = TokenMatrix.of(adata.X).n_tokens
    warn_left_out(adata.obs_names, labels, assignment.counts() > 0, n_tokens)
    if sample_sets is not None:
        options = {**options, "max_sets": int(sample_sets)}
    reference = ReferenceSets(adata.obs, np.zeros((adata.n_obs, 0), np.float32), adata.X)
    annotator = reference.fit_annotator(table, **options)
    region_vectors, label_vectors, set_space = annotator_space(annotator, table, random_state=options["random_state"])
    fitted = annotator.classifier_.compared_rows
    record.update(
        dim=int(region_vectors.shape[1]), backend="native", random_state=options["random_state"],
        sample_sets=None if sample_sets is None else int(sample_sets), n_examples=int(fitted.size),
    )  # fmt: skip
    model = BEDSpaceModel(universe, region_vectors, table, label_vectors, params=record, space=set_space)
    in_training = np.zeros(adata.n_obs, bool)
    in_training[fitted] = True
    logg.info(
        f"wrote the annotator's scores of {len(table)} labels and the sets' regions as a space of {model.dim} "
        f"dimensions (fitted on {fitted.size} sets)"
    )
    return model, in_training, annotator


def _starspace_space(
    adata, labels, universe, params: TrainParams, backend, binary, threads, random_state, sample_sets, record
) -> tuple[BEDSpaceModel, np.ndarray]:
    """The model of StarSpace's objective, trained, and which sets were training examples."""
    training_sets, rows = _training_sets(adata, labels, sample_sets, random_state)
    examples = training_examples(training_sets, labels)
    # examples hold their own copy of the tokens: a copy read from a backed file is freed before training
    del training_sets

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
    region_counts, label_counts = examples.region_counts(), examples.label_counts()
    region_vectors[region_counts == 0] = 0
    label_vectors[label_counts == 0] = 0
    # a diverged run (non-finite or zeroed vectors) is an error naming lr, never a model that looks trained
    check_training(
        region_vectors, label_vectors, region_counts=region_counts, label_counts=label_counts, lr=params.lr,
        backend=backend,
    )  # fmt: skip
    record.update(
        **params.record(),
        backend=backend,
        n_threads=threads,
        random_state=int(random_state),
        sample_sets=None if sample_sets is None else int(sample_sets),
        n_examples=examples.n_examples,
    )
    model = BEDSpaceModel(universe, region_vectors, examples.labels, label_vectors, params=record, loss=losses)
    in_training = np.zeros(adata.n_obs, bool)
    in_training[examples.rows if rows is None else rows[examples.rows]] = True
    logg.info(
        f"trained {adata.n_vars} regions and {len(examples.labels)} labels on {examples.n_examples} sets ({backend})"
    )
    return model, in_training


def _uncalibratable(adata: ad.AnnData, labels: list[str]) -> list[str]:
    """The label fields of ``adata`` whose annotator calibration cannot be fitted (no value shared by two sets)."""
    table, _ = LabelTable.from_obs(adata.obs, labels, warn_numbers=False)
    codes = {f: table.codes(f, adata.obs[f]) for f in labels}
    return without_shared_labels(codes, TokenMatrix.of(adata.X).n_tokens, minimum_sets=MIN_SETS_TO_CALIBRATE)


def _can_calibrate(adata: ad.AnnData, labels: list[str]) -> bool:
    """Whether the annotator can be calibrated on ``labels``; if not, a warning naming the fields that prevent it."""
    blocked = _uncalibratable(adata, labels)
    if blocked:
        warn(
            f"label field(s) {blocked}: no value is carried by two labelled sets, so no set's held-out answer can be "
            "checked and the annotator cannot be calibrated; it is fitted without calibration (scores, no "
            f"probabilities). Leave {blocked} out of labels to calibrate the others, or train with calibrate=False "
            "(bedspace train --no-calibrate) to say so"
        )
    return not blocked


def _training_sets(
    adata: ad.AnnData, labels: list[str], sample_sets: int | None, random_state: int
) -> tuple[ad.AnnData, np.ndarray | None]:
    """The sets to train on, in memory, and their rows in ``adata`` (``None``: ``adata`` itself, every row).

    An in-memory collection without a sample is used as it is. Otherwise the chosen rows are read a chunk at a
    time into one CSR matrix of just those rows, so that a backed collection is never loaded whole.
    """
    if not adata.isbacked and sample_sets is None:
        return adata, None
    # the label columns checked as training checks them, before any reading (training_examples warns)
    LabelTable.from_obs(adata.obs, labels, warn_numbers=False)
    X = adata.X
    backed_csr = adata.isbacked and getattr(X, "format", None) == "csr"
    if not backed_csr:
        if adata.isbacked:  # a backed CSC or dense matrix cannot be read by rows
            X = X.to_memory() if hasattr(X, "to_memory") else np.asarray(X)
        X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
    indptr = np.asarray(X.group["indptr"][...] if backed_csr else X.indptr, dtype=np.int64)
    n_tokens = np.diff(indptr)

    if sample_sets is None:
        # every set, as training_examples would take them (it warns about those it leaves out)
        rows = np.arange(adata.n_obs)
    else:
        labelled = adata.obs[labels].notna().to_numpy().any(axis=1)
        candidates = np.flatnonzero(labelled & (n_tokens > 0))
        left_out = adata.n_obs - candidates.size
        if left_out:
            warn(
                f"{left_out} set(s) have no value in {labels} or overlap no universe region and are not drawn for "
                "training (they still get an embedding)"
            )
        if candidates.size == 0:
            raise ValueError(f"nothing to train on: no set has both a label in {labels} and a universe region")
        rows = _stratified_sample(adata.obs.iloc[candidates][labels], int(sample_sets), random_state)
        rows = candidates[rows]

    # the chosen rows' tokens, copied chunk by chunk into arrays of the final size
    sizes = n_tokens[rows]
    sub_indptr = np.zeros(rows.size + 1, np.int64)
    np.cumsum(sizes, out=sub_indptr[1:])
    small = sub_indptr[-1] < np.iinfo(np.int32).max  # int32 indptr keeps scipy from widening the indices
    sub_indptr = sub_indptr.astype(np.int32) if small else sub_indptr
    indices = np.empty(int(sub_indptr[-1]), np.int32)
    position = 0
    while position < rows.size:
        # rows of the collection from rows[position]; at most CHUNK_TOKENS tokens of the file, at least one row
        first = int(rows[position])
        stop = int(np.searchsorted(indptr, indptr[first] + CHUNK_TOKENS, side="right")) - 1
        stop = min(max(stop, first + 1), adata.n_obs)
        end = int(np.searchsorted(rows, stop))
        chunk = X[first:stop]
        picked = chunk[rows[position:end] - first]
        picked.sort_indices()
        indices[sub_indptr[position] : sub_indptr[end]] = picked.indices
        position = end
    matrix = sp.csr_matrix(
        (np.ones(indices.size, np.uint8), indices, sub_indptr), shape=(rows.size, adata.n_vars), copy=False
    )
    obs = adata.obs.iloc[rows]
    return ad.AnnData(X=matrix, obs=pd.DataFrame(obs[labels], index=obs.index), var=adata.var[[]]), rows


def _stratified_sample(frame: pd.DataFrame, n: int, random_state: int) -> np.ndarray:
    """Sorted positions of ``n`` rows of ``frame`` drawn at random, stratified by the combination of its columns.

    Every combination keeps one row (so no label is lost to the sample); the other ``n - combinations`` are shared
    in proportion to the combinations' sizes beyond that row (largest remainders), each drawn without replacement.
    """
    if n >= len(frame):
        return np.arange(len(frame))
    codes = frame.groupby(list(frame.columns), dropna=False, observed=True, sort=True).ngroup().to_numpy()
    sizes = np.bincount(codes)
    if n < sizes.size:
        raise ValueError(
            f"sample_sets={n} is smaller than the {sizes.size} combinations of {list(frame.columns)} among the "
            f"labelled sets; every combination needs a set in the sample: ask for at least {sizes.size}"
        )
    spare = sizes - 1
    share = (n - sizes.size) * spare / spare.sum()
    quota = np.floor(share).astype(np.int64)
    remaining = n - sizes.size - int(quota.sum())
    quota[np.argsort(-(share - quota), kind="stable")[:remaining]] += 1  # largest remainders
    quota += 1
    rng = np.random.default_rng(random_state)
    members = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    drawn = [rng.choice(members[bounds[g] : bounds[g + 1]], quota[g], replace=False) for g in range(sizes.size)]
    return np.sort(np.concatenate(drawn))


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


def calibrate(
    adata: ad.AnnData,
    *,
    key: str = DEFAULT,
    n_folds: int | None = None,
    random_state: int | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Fit the default r2l annotator again: its classifier, calibrated probabilities and domain.

    :func:`train` already fits it (leave-one-out); call this to fit it with other options, or after the sets
    changed. The annotator (:class:`~bedspace.annotate.RegionAnnotator`) is a kernel ridge classifier on the
    sets' shared regions, fitted on every labelled set (on a sample of 2,000 keeping every combination of labels
    beyond). Every labelled set is annotated as a new query would be, without itself among the reference sets:

    * ``n_folds=None`` (the default, what :func:`train` runs): leave one out — each set is annotated by the
      classifier fitted on all the others, exactly as a new query is (the classifier's leave-one-out is exact and
      costs no refit); beyond 2,000 sets, a random 2,000 of them.
    * ``n_folds=k``: cross-fitting — the sets are dealt into ``k`` folds stratified by the first label field,
      and the fold's sets are annotated by a classifier fitted on the other folds' sets: each set from
      ``1 - 1/k`` of the collection (a little pessimistic).

    Neither trains an embedding: the annotator compares region tokens. A backed collection is read a few rows
    at a time (only the sets the fit compares).

    Sets whose label no other set carries are left out (no annotator can get them right). A temperature-scaled
    softmax per field, with an isotonic step where it helps out of sample, is fitted on those annotations, and
    the domain (how much of a query lies in the universe, and how much it must share with its best reference set)
    on the collection's sets. Fewer than 10 labelled sets are too few: the annotator then gives scores only.
    ``benchmarks/evaluate.py`` measures the calibration on held-out sets.

    Parameters
    ----------
    adata
        A collection trained with :func:`train` (in memory or backed).
    key
        The ``key_added`` of :func:`train`.
    n_folds
        ``None``: leave one out; or folds of the cross-fitting (>= 2).
    random_state
        Seed of the folds, and of the samples of sets beyond 2,000 (default: the training's seed).
    copy
        Return a calibrated copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the calibrated copy when ``copy=True``. Writes:

    ``adata.uns[key]["annotator"]``
        The fitted annotator (:meth:`~bedspace.annotate.RegionAnnotator.to_record`): per label field the fitted
        sets, their dual weights and leave-one-out scores, every set's label, the labels' base rates
        (``priors``) and calibrator (temperature, isotonic knots); the domain thresholds (``min_log_odds``,
        ``min_coverage``); per field the ``hit@1`` and ``ece`` of the held-out annotations (``diagnostics``)
        and their reliability bins (``reliability``); a fingerprint of the compared sets' tokens.

    Raises
    ------
    ValueError
        ``adata`` is not trained under ``key``, has too few labelled sets for ``n_folds`` folds, or a label field
        in which no two sets share a value (it cannot be calibrated; it is named).
    """
    adata = adata.copy() if copy else adata
    model = searchable(adata, key, warn_changes=False)  # fitted again here whatever changed
    reference = model.need_reference()
    if reference.tokens is not None:
        codes = reference.label_codes(model.label_table)
        blocked = without_shared_labels(codes, reference.tokens.n_tokens, minimum_sets=MIN_SETS_TO_CALIBRATE)
        if blocked:
            raise ValueError(
                f"label field(s) {blocked}: no value is carried by two labelled sets, so no set's held-out answer "
                f"can be checked and the annotator cannot be calibrated; train again without {blocked} in labels "
                "to calibrate the others (the annotator kept gives scores)"
            )
    seed = int(model.params.get("random_state", 0) or 0) if random_state is None else random_state
    model.need_reference().fit_annotator(
        model.label_table, n_folds=n_folds, random_state=seed, chromosomes=model.universe.chromosome_codes
    )
    keep_annotator(adata, key, model)
    return adata if copy else None
