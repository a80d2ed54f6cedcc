"""Held-out annotations behind ``bs.tl.calibrate``: the default annotator's probabilities and domain.

Every training set is annotated by a classifier that never saw it: exact leave-one-out of the kernel ridge
classifier (the default), or a classifier fitted on the other folds. Neither trains an embedding: the annotator
compares region tokens only.
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from .. import _logging as logg
from .._annotation import Comparison, KernelClassifier, annotate, fit_annotator, positions_in, stratified_folds
from .._enrichment import binary_csr
from .._keys import Keys
from .._model import searchable

# Leave-one-out calibration annotates at most this many training sets.
MAX_QUERIES = 2000


def cross_fit(adata: ad.AnnData, *, key: str, n_folds: int | None, random_state: int | None) -> None:
    """Fit ``adata.uns[key]["annotator"]`` (see :func:`bedspace.tl.calibrate`)."""
    keys = Keys(key)
    keys.needs_training(adata)
    if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2):
        raise ValueError(f"n_folds must be None (leave-one-out) or a whole number >= 2, got {n_folds!r}")
    if adata.isbacked:
        raise ValueError("calibrate compares region tokens of the training sets: load the collection into memory")
    record = adata.uns[keys.record]
    params = dict(record.get("params", {}))
    seed = int(params.get("random_state", 0)) if random_state is None else int(random_state)
    table = searchable(adata, key).label_table
    fields = table.fields
    rows = np.flatnonzero(np.asarray(adata.obs[keys.in_training], dtype=bool))
    codes = {f: table.codes(f, adata.obs[f].iloc[rows]) for f in fields}
    n_labels = {f: int(table.in_field(f).sum()) for f in fields}
    X = binary_csr(adata.X, name="adata.X")  # the collection's own matrix when it is 0/1 float32 CSR (tokenize's)
    # The training sets are read from it in place (reference_rows, query_rows): no copy of their tokens.
    training = None if rows.size == X.shape[0] else rows
    if n_folds is None:
        # Leave one out: exact for the kernel classifier. Beyond MAX_QUERIES, a random share of the training sets
        # (the fit needs hundreds of annotations, not all).
        picked = np.arange(rows.size)
        if rows.size > MAX_QUERIES:
            picked = np.sort(np.random.default_rng(seed).choice(rows.size, MAX_QUERIES, replace=False))
        classifier, among_fitted = KernelClassifier.fit_compared(
            X, {f: (codes[f], n_labels[f]) for f in fields}, reference_rows=training, random_state=seed
        )
        held_scores, best_log_odds = _left_out(X, rows, training, picked, classifier, among_fitted)
        # Fitted on every set of the collection, it is the classifier a query of it needs: kept, not refitted.
        kept = classifier.to_record(X) if training is None else None
    else:
        picked = np.arange(rows.size)
        held_scores, best_log_odds = _cross_fitted(X, rows, codes, n_labels, n_folds, seed)
        kept = None
    _fit(adata, keys, table, fields, rows, picked, codes, n_labels, held_scores, best_log_odds, n_folds, kept)


def _left_out(X, rows, training, picked, classifier, among_fitted):
    """Leave-one-out scores and best log odds of the training sets ``picked`` (positions among ``rows``).

    The classifier's fitted sets were compared with each other by its fit (``among_fitted``): their answers come
    from those numbers; only the other sets (unlabelled ones, or beyond the fitted sample) are compared again.
    """
    at = positions_in(classifier.compared_rows, picked)
    fitted = at >= 0
    held_scores = {name: np.zeros((picked.size, n)) for name, n in classifier.n_labels.items()}
    best_log_odds = np.zeros(picked.size)
    known = Comparison(among_fitted.kernel[at[fitted]], among_fitted.best_log_odds[at[fitted]])
    best_log_odds[fitted] = known.best_log_odds
    for name in held_scores:
        held_scores[name][fitted] = classifier.scores(name, known, picked[fitted])
    if not fitted.all():
        others = picked[~fitted]
        result = annotate(X, X, classifier, None, query_rows=rows[others], reference_rows=training, own=others)
        best_log_odds[~fitted] = result.best_log_odds
        for name in held_scores:
            held_scores[name][~fitted] = result.scores[name]
    return held_scores, best_log_odds


def _cross_fitted(X, rows, codes, n_labels, n_folds, seed):
    """Scores of each training set (``rows`` of ``X``) by a classifier fitted on the other folds, against them."""
    fields = list(codes)
    folds = stratified_folds(codes[fields[0]], n_folds, seed)
    if np.bincount(folds, minlength=n_folds).min() < 1:
        raise ValueError(f"{rows.size} training sets are too few for {n_folds} folds")
    held_scores = {f: np.zeros((rows.size, n_labels[f])) for f in fields}
    best_log_odds = np.zeros(rows.size)
    for fold in range(n_folds):
        held, kept = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        logg.info(f"calibrate: fold {fold + 1} of {n_folds}, fitted on {kept.size} sets")
        classifier = KernelClassifier.fit(
            X, {f: (codes[f][kept], n_labels[f]) for f in fields}, reference_rows=rows[kept], random_state=seed
        )
        result = annotate(X, X, classifier, None, query_rows=rows[held], reference_rows=rows[kept])
        for f in fields:
            held_scores[f][held] = result.scores[f]
        best_log_odds[held] = result.best_log_odds
    return held_scores, best_log_odds


def _fit(
    adata, keys, table, fields, rows, picked, codes, n_labels, held_scores, best_log_odds, n_folds, classifier
) -> None:
    """Fit the annotator on the held-out annotations (of the training sets ``picked``); write it into ``uns``.

    ``classifier``: the record of the classifier to keep beside it, or ``None`` (an older one is dropped).
    """
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
    record.pop("classifier", None)
    if classifier is not None:
        record["classifier"] = classifier
    adata.uns[keys.record] = record
    summary = ", ".join(f"{f} hit@1 {d['hit@1']:.2f} ECE {d['ece']:.3f}" for f, d in annotator.diagnostics.items())
    how = "leave-one-out" if n_folds is None else f"{n_folds} folds"
    logg.info(f"calibrated the annotator on {picked.size} held-out annotations ({how}): {summary}")
    logg.added(keys.record, "annotator (calibration and domain of the default r2l annotator)", "uns")
    if classifier is not None:
        logg.added(keys.record, "classifier (the default r2l annotator's, fitted on every set)", "uns")
