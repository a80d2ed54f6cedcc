"""Why a query got a label's score: the score split exactly over the query's universe regions and the reference sets.

The default annotator's score of label ``l`` for a query is linear in the query's kernel row (its token cosine
with each fitted reference set, :mod:`~bedspace.annotate._ridge`)::

    score_l = w_l · ( Σ_j (L·k_j − mean_j(L·k) − m_j + m̄) · α_jl + b_l )

``k_j = |q ∩ s_j| / sqrt(|q|·|s_j|)`` (shared regions over the geometric mean of the sizes), ``L`` the query's
lift (its kernel row scaled up when its best match is weaker than the sets' typical best match), ``m_j`` the
kernel's centring, ``α`` the dual weights, ``b_l`` the intercept and ``w_l`` the label's balancing weight. With
``β_jl = α_jl − mean_j α_jl`` (the row-mean centring moved onto the weights) it is::

    score_l = baseline_l + Σ_j weight_jl,            weight_jl = w_l · L · k_j · β_jl
            = baseline_l + Σ_{r ∈ q} contribution_rl, contribution_rl = w_l · L · Σ_{j ∋ r} β_jl / sqrt(|q|·|s_j|)

exactly, with ``baseline_l = w_l · (b_l + Σ_j (m̄ − m_j) · α_jl)``, the part that no region of the query makes.
A region's contribution is what the reference sets carrying it give, each by its weight for the label over
the two sets' sizes: a region carried by the label's sets (positive weights) and not by the others (negative
weights) is evidence for the label. This is an exact additive decomposition of the score at the query's lift
and size — not Shapley values and not a derivative: the lift and the size ``|q|`` are taken as they are (both
scale every region's contribution alike), so removing regions changes the score by about, not exactly, their
contributions (``benchmarks/explain.py`` measures the drop).

A stored set asked for by name is annotated from the other sets (its exact leave-one-out score): it is explained
by the classifier fitted without it (the same strength, centring and label weights; its dual weights from the
bordered ridge system of the other fitted sets), whose kernel row has no lift. Its leave-one-out score is then
split the same way, to the same float.

The calibration maps the scores to probabilities afterwards (monotone per field): it is not decomposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from .._cache import PerObject
from ._kernel import overlap_counts
from ._ridge import MAX_LIFT, FieldClassifier
from ._tokens import TokenRows, positions_in

# Per fitted classifier: its compared sets' kernel with each other (to explain stored sets, left out).
_KERNELS = PerObject()


@dataclass(frozen=True)
class ScoreParts:
    """One label's score of one query, split over the query's regions and the fitted reference sets.

    Attributes
    ----------
    field, column
        The label: its field and its column among the field's labels.
    score
        The annotator's score (what r2l reports): ``baseline + contributions.sum()`` (= ``baseline +
        set_weights.sum()``) up to float.
    baseline
        The part of the score no region of the query makes (intercept and centring).
    lift
        The factor the query's kernel row was scaled by (1 for a stored set, annotated from the others).
    left_out
        Whether the query is a fitted set explained by the classifier fitted without it.
    regions
        The query's universe regions (column numbers), ascending.
    contributions
        Per region, its part of the score.
    carriers, others
        Per region, how many fitted sets of the label, and of other labels of the field, carry it (the query
        itself not counted).
    sets
        The fitted reference sets (positions among the annotator's reference sets) that count.
    set_weights
        Per set, its part of the score (``w · L · k_j · β_j``).
    shared
        Per set, its regions shared with the query.
    label_sets
        Per set, whether it carries the label.
    """

    field: str
    column: int
    score: float
    baseline: float
    lift: float
    left_out: bool
    regions: np.ndarray
    contributions: np.ndarray
    carriers: np.ndarray
    others: np.ndarray
    sets: np.ndarray
    set_weights: np.ndarray
    shared: np.ndarray
    label_sets: np.ndarray


def explain_scores(
    annotator, query: TokenRows, labels: Mapping[str, Sequence[int]], *, own: int = -1
) -> list[ScoreParts]:
    """Split the scores of some labels for one query: a :class:`ScoreParts` per label, in the order asked.

    Parameters
    ----------
    annotator
        A fitted :class:`~bedspace.annotate.RegionAnnotator`.
    query
        One query's tokens on the annotator's universe.
    labels
        Per label field, the labels to explain: their columns among the field's labels.
    own
        The reference set the query is (its position among the annotator's sets), or -1: a fitted set of a field
        is explained by that field's classifier fitted without it, as r2l annotates it.

    Raises
    ------
    ValueError
        Not one query; another universe; no fitted set of a field; a label no fitted set carries (its score is
        only a placeholder below the others).
    KeyError
        A field the annotator does not have.
    """
    annotator._check_fitted()
    if len(query) != 1:
        raise ValueError(f"an explanation is of one query, got {len(query)}")
    if query.n_regions != annotator.n_regions_:
        raise ValueError(f"the query has {query.n_regions} universe regions, the annotator {annotator.n_regions_}")
    asked = {str(f): [int(c) for c in np.atleast_1d(columns)] for f, columns in labels.items()}
    for field, columns in asked.items():
        if field not in annotator.fields_:
            raise KeyError(f"the annotator has no label field {field!r}; its fields are {annotator.fields_}")
        fitted = annotator.classifier_.fields[field]
        if fitted.rows.size == 0:
            raise ValueError(
                f"no reference set is labelled in field {field!r}: its scores are all 0, nothing to explain"
            )
        for column in columns:
            if not fitted.present[column]:
                raise ValueError(
                    f"no fitted reference set carries {field}={annotator.label_names_[field][column]}: its score is "
                    "a placeholder below the others, with nothing to explain"
                )
    compared = _fitted_rows_of(annotator, None)
    compared_rows = annotator.classifier_.compared_rows
    query = query.compact()
    regions = np.asarray(query.indices, dtype=np.int64)
    n_query = regions.size
    position = np.full(query.n_regions, -1, np.int32)  # per universe region, its place in the query or -1
    position[regions] = np.arange(n_query)
    # Per field: its fitted sets among the compared ones, the query's own place among them, the dual weights
    # (of the classifier fitted without the query when it is one of them); then one pass over the compared sets'
    # regions sums, per query region, each label's per-set numbers (and counts the carriers).
    per_set_of = np.where(compared.sizes > 0, 1.0 / np.sqrt(np.maximum(compared.sizes, 1.0) * max(n_query, 1)), 0.0)
    blocks, plans = [], []
    for field, columns in asked.items():
        fitted: FieldClassifier = annotator.classifier_.fields[field]
        among = np.searchsorted(compared_rows, fitted.rows)
        at = int(positions_in(fitted.rows, [own])[0]) if own >= 0 else -1
        keep = np.arange(fitted.rows.size) != at  # the query is not its own evidence
        if at >= 0:
            alpha, intercept = _left_out_weights(annotator, fitted, at)
            beta = alpha  # its weights sum to 0 already (the bordered system's last row)
        else:
            alpha, intercept = fitted.coefficients, fitted.intercept
            beta = alpha - alpha.mean(axis=0, keepdims=True)  # the kernel row's mean, moved onto the weights
        carries = np.equal.outer(fitted.codes, np.asarray(columns, dtype=np.int64)) & keep[:, None]
        labelled = (fitted.codes >= 0) & keep
        per_set = np.where(keep, per_set_of[among], 0.0)
        block = np.zeros((compared_rows.size, 2 * len(columns) + 1))
        block[among] = np.column_stack([beta[:, columns] * per_set[:, None], carries, labelled])
        blocks.append(block)
        plans.append((field, columns, fitted, among, at, keep, alpha, beta, intercept, per_set, carries))
    summed, shared = _sums_over_sets(
        compared.indptr, compared.indices, compared.rows, position, np.hstack(blocks), n_query
    )
    parts, offset = [], 0
    for field, columns, fitted, among, at, keep, alpha, beta, intercept, per_set, carries in plans:
        mine = summed[:, offset : offset + 2 * len(columns) + 1]
        offset += 2 * len(columns) + 1
        kernel_row = shared[among] * per_set
        lift = 1.0
        if at < 0 and kernel_row.size and kernel_row.max() > 0:  # FieldClassifier.predict's
            lift = float(min(max(1.0, fitted.typical_best / kernel_row.max()), MAX_LIFT))
        weights = fitted.label_weights
        centring = fitted.kernel_mean.mean() - fitted.kernel_mean
        for i, column in enumerate(columns):
            scale = weights[column] * lift
            contributions = scale * mine[:, i]
            set_weights = scale * kernel_row * beta[:, column]
            baseline = weights[column] * (intercept[column] + centring @ alpha[:, column])
            carriers = np.rint(mine[:, len(columns) + i]).astype(np.int64)
            parts.append(
                ScoreParts(
                    field, column, float(baseline + contributions.sum()), float(baseline), lift, at >= 0, regions,
                    contributions, carriers, np.rint(mine[:, -1]).astype(np.int64) - carriers, fitted.rows[keep],
                    set_weights[keep], shared[among][keep].astype(np.int64), carries[keep, i],
                )
            )  # fmt: skip
    return parts


def _fitted_rows_of(annotator, fitted: FieldClassifier | None) -> TokenRows:
    """The field's fitted sets' tokens (``None``: every compared set's), read in place (in memory or mapped)."""
    classifier = annotator.classifier_
    if annotator._compared is None:  # bound unchecked (a model folder's): read on the first query
        annotator._compared = annotator._tokens.read(classifier.compared_rows)
    if fitted is None:
        return annotator._compared
    return annotator._compared.subset(np.searchsorted(classifier.compared_rows, fitted.rows))


def _left_out_weights(annotator, fitted: FieldClassifier, at: int) -> tuple[np.ndarray, np.ndarray]:
    """Dual weights (fitted sets × labels, 0 for set ``at``) and intercept of the classifier fitted without ``at``.

    The fit's exact leave-one-out (residual over 1 − leverage) is ridge regression with an unpenalised
    intercept on the other fitted sets, with the centred kernel of all of them: its dual form is the bordered
    system ``[[K + a·I, 1], [1ᵀ, 0]] · [α; b] = [y; 0]`` over the other sets, ``y`` their 0/1 targets.
    """
    classifier = annotator.classifier_
    among = np.searchsorted(classifier.compared_rows, fitted.rows)
    kernel = _compared_kernel(annotator)[np.ix_(among, among)]
    mean = fitted.kernel_mean
    centred = kernel - mean[None, :] - mean[:, None] + mean.mean()
    n, n_labels = fitted.rows.size, fitted.coefficients.shape[1]
    keep = np.flatnonzero(np.arange(n) != at)
    targets = np.zeros((keep.size, n_labels))
    targets[np.arange(keep.size), fitted.codes[keep]] = 1.0
    system = np.zeros((keep.size + 1, keep.size + 1))
    system[:-1, :-1] = centred[np.ix_(keep, keep)] + fitted.alpha * np.eye(keep.size)
    system[:-1, -1] = system[-1, :-1] = 1.0
    solution = np.linalg.solve(system, np.vstack([targets, np.zeros((1, n_labels))]))
    alpha = np.zeros((n, n_labels))
    alpha[keep] = solution[:-1]
    return alpha, solution[-1]


def _compared_kernel(annotator) -> np.ndarray:
    """The token cosine of the compared sets with each other: computed on the first stored query, then kept.

    (The fit computed it and let it go: the annotator's saved form holds only what a new query needs. On the hg19
    collection it takes a few seconds.)
    """
    classifier = annotator.classifier_
    kernel = _KERNELS.get(classifier)
    if kernel is None:
        compared = _fitted_rows_of(annotator, None)
        sizes = compared.sizes
        norms = np.sqrt(np.outer(sizes, sizes))
        kernel = np.divide(overlap_counts(compared, compared), norms, out=np.zeros(norms.shape), where=norms > 0)
        _KERNELS.set(classifier, kernel)
    return kernel


@numba.njit(cache=True, nogil=True)
def _sums_over_sets(indptr, indices, rows, position, weights, n_query):
    """Sums over the sets having each query region (``position`` ≥ 0) of their ``weights``; each set's shared regions.

    One pass over the sets' regions.
    """
    out = np.zeros((n_query, weights.shape[1]))
    shared = np.zeros(rows.size)
    for c in range(rows.size):
        j = rows[c]
        for p in range(indptr[j], indptr[j + 1]):
            t = position[indices[p]]
            if t >= 0:
                shared[c] += 1.0
                for m in range(weights.shape[1]):
                    out[t, m] += weights[c, m]
    return out, shared
