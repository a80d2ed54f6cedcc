"""Cross-fitting behind ``bs.tl.calibrate``: the default annotator's probabilities from held-out annotations.

The public function lives beside :func:`bedspace.tl.train` (it trains the folds with it); this module gets the
training function passed in, so that imports run one way.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import anndata as ad
import numpy as np

from .. import _logging as logg
from .._annotation import annotate, fit_annotator, stratified_folds
from .._keys import Keys
from .._model import searchable
from .._similarity import unit_rows

# Leave-one-out calibration annotates at most this many training sets.
MAX_QUERIES = 2000
# Options of bs.tl.train that a fold's model is trained with, as recorded in adata.uns[key]["params"].
_TRAIN_OPTIONS = (
    "dim",
    "epochs",
    "lr",
    "neg_search_limit",
    "max_neg_samples",
    "margin",
    "batch_size",
    "loss",
    "exclude_positives",
    "dropout",
    "backend",
    "n_threads",
)


def cross_fit(
    adata: ad.AnnData, *, key: str, n_folds: int | None, random_state: int | None, train: Callable[..., None]
) -> None:
    """Fit ``adata.uns[key]["annotator"]`` (see :func:`bedspace.tl.calibrate`); ``train`` trains a fold."""
    keys = Keys(key)
    keys.needs_training(adata)
    if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2):
        raise ValueError(f"n_folds must be None (leave-one-out) or a whole number >= 2, got {n_folds!r}")
    if adata.isbacked:
        raise ValueError("calibrate compares region tokens of the training sets: load the collection into memory")
    record = adata.uns[keys.record]
    params = dict(record.get("params", {}))
    labels = [str(c) for c in np.atleast_1d(params.get("labels", []))]
    if not labels:
        raise ValueError(f"adata.uns[{keys.record!r}]['params'] names no label columns: train again")
    seed = int(params.get("random_state", 0)) if random_state is None else int(random_state)
    options = {name: params[name] for name in _TRAIN_OPTIONS if name in params}
    model = searchable(adata, key)  # not from_anndata: that copies the collection's tokens
    table = model.label_table
    fields = table.fields
    rows = np.flatnonzero(np.asarray(adata.obs[keys.in_training], dtype=bool))
    codes = {f: table.codes(f, adata.obs[f].iloc[rows]) for f in fields}
    n_labels = {f: int(table.in_field(f).sum()) for f in fields}
    X = adata.X.tocsr()
    if n_folds is None:
        # Leave one out: training sets annotated from all the others, with the trained embedding. Beyond
        # MAX_QUERIES, a random share of them (the cost is queries × sets; the fit needs hundreds, not all).
        picked = np.arange(rows.size)
        if rows.size > MAX_QUERIES:
            picked = np.sort(np.random.default_rng(seed).choice(rows.size, MAX_QUERIES, replace=False))
        result = annotate(
            X[rows[picked]],
            model.unit_set_vectors[rows[picked]],
            X[rows],
            model.unit_set_vectors[rows],
            {f: (codes[f], n_labels[f]) for f in fields},
            None,
            own=picked,
        )
        held_scores, best_log_odds = result.scores, result.best_log_odds
    else:
        picked = np.arange(rows.size)
        held_scores, best_log_odds = _cross_fitted(
            adata, X, rows, codes, n_labels, n_folds, seed, labels, options, key, train
        )
    _fit(adata, keys, table, fields, rows, picked, codes, n_labels, held_scores, best_log_odds, n_folds)


def _cross_fitted(adata, X, rows, codes, n_labels, n_folds, seed, labels, options, key, train):
    """Fused scores of each training set by a model trained on the other folds, against the other folds' sets."""
    fields = list(codes)
    folds = stratified_folds(codes[fields[0]], n_folds, seed)
    if np.bincount(folds, minlength=n_folds).min() < 1:
        raise ValueError(f"{rows.size} training sets are too few for {n_folds} folds")
    held_scores = {f: np.zeros((rows.size, n_labels[f])) for f in fields}
    best_log_odds = np.zeros(rows.size)
    for fold in range(n_folds):
        held, kept = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        logg.info(f"calibrate: fold {fold + 1} of {n_folds}, training on {kept.size} sets")
        part = adata[rows[kept]].copy()
        with _quiet():
            train(part, labels=labels, random_state=seed + 1 + fold, key_added=key, calibrate=False, **options)
        fold_model = searchable(part, key)
        query_tokens = X[rows[held]]
        result = annotate(
            query_tokens,
            unit_rows(fold_model.embed_rows(query_tokens.indptr, query_tokens.indices)),
            X[rows[kept]],
            fold_model.unit_set_vectors,
            {f: (codes[f][kept], n_labels[f]) for f in fields},
            None,
        )
        for f in fields:
            held_scores[f][held] = result.scores[f]
        best_log_odds[held] = result.best_log_odds
        del part, fold_model
    return held_scores, best_log_odds


def _fit(adata, keys, table, fields, rows, picked, codes, n_labels, held_scores, best_log_odds, n_folds) -> None:
    """Fit the annotator on the held-out annotations (of the training sets ``picked``) and write it into ``uns``."""
    label_names = {f: table.names[table.in_field(f)].tolist() for f in fields}
    priors, answerable = {}, {}
    for f in fields:
        counts = np.bincount(codes[f][codes[f] >= 0], minlength=n_labels[f])
        priors[f] = counts / max(counts.sum(), 1)
        # A set whose label no other set carries cannot be annotated right by any annotator: leave it out of the
        # fit, as a query of a label the collection lacks is out of what the probabilities can speak for.
        mine = codes[f][picked]
        answerable[f] = np.where((mine >= 0) & (counts[np.maximum(mine, 0)] >= 2), mine, -1)
    column = "frac_regions_in_universe"  # recorded by bs.pp.tokenize
    coverage = adata.obs[column].to_numpy(np.float64)[rows] if column in adata.obs else None
    annotator = fit_annotator(
        {f: (held_scores[f], answerable[f]) for f in fields}, label_names, priors, best_log_odds, coverage=coverage
    )
    record = dict(adata.uns[keys.record])
    record["annotator"] = annotator.to_dict()
    adata.uns[keys.record] = record
    summary = ", ".join(f"{f} hit@1 {d['hit@1']:.2f} ECE {d['ece']:.3f}" for f, d in annotator.diagnostics.items())
    how = "leave-one-out" if n_folds is None else f"{n_folds} folds"
    logg.info(f"calibrated the annotator on {picked.size} held-out annotations ({how}): {summary}")
    logg.added(keys.record, "annotator (calibration and domain of the default r2l annotator)", "uns")


@contextmanager
def _quiet():
    """The folds' own training messages would read as if they had written into the user's AnnData."""
    import scanpy as sc

    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 0
    try:
        yield
    finally:
        sc.settings.verbosity = verbosity
