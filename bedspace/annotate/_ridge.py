"""The annotator's classifier: kernel ridge regression on the token cosine, one per label field.

A query's labels are predicted from the labelled reference sets by kernel ridge regression (a regularised
least-squares classifier, one output per label of a field) on the token cosine
(:func:`~bedspace.annotate._kernel.token_cosine`). The classifier's weights sit on the reference sets, so a
query's scores are a weighted sum of its overlap with each of them: like a vote of its most overlapping sets, but
the weights are fitted so that the reference sets predict each other, which keeps a large group of look-alike
sets (hundreds of blood sets) from outvoting the two or three sets that are the only ones of their label; and a
rare label's target is weighted up against the common ones' (label-balanced targets, as far as leave-one-out
says it helps: :data:`BALANCE_POWERS`). A query whose best match is weaker than the reference sets' typical best
match (a noisier or shallower peak file) has its overlaps scaled up to that first, so that uniformly weaker
overlaps do not pull every answer towards the commonest label, but by :data:`MAX_LIFT` at most: overlaps far
weaker than that are mostly chance, and scaled up they would make a label of it. The model has an intercept (the
kernel is centred) and one regularisation strength per field, chosen by exact leave-one-out over the reference
sets from :data:`ALPHAS`; the same leave-one-out scores calibrate the probabilities, so the calibration is not
fitted on answers the classifier saw (only the one balancing power was chosen on them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._kernel import Comparison, comparison, overlap_counts
from ._tokens import TokenRows, blocks

#: Regularisation strengths tried per field; the one with the smallest leave-one-out squared error is kept (as
#: scikit-learn's RidgeCV chooses). On the hg19 collection that is the smallest, and the held-out answers are the
#: same for every strength up to 0.03 (``benchmarks/evaluate.py``).
ALPHAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
#: Powers tried for the label-balanced targets of :meth:`FieldClassifier.fit`: a set's target for its label is
#: the label's share of the fitted sets to the power -``b`` instead of 1, so that the rare labels' scores are not
#: dwarfed by the common ones' (the ridge regression is linear in its targets: this multiplies each label's scores
#: by its weight). The power with the most leave-one-out answers right is kept per field (the smallest of a tie;
#: 0 is the plain regression). On the hg19 collection that is 0.15–0.4 for organ and cell_class, where a tissue or
#: cell type often rests on two or three sets beside dozens of blood sets, and 0–0.1 for assay.
BALANCE_POWERS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
#: The classifier is fitted on at most this many labelled reference sets (a stratified sample beyond: every label
#: keeps its sets first): fitting costs sets³ and sets² memory (2,000 sets: a few seconds and 32 MB).
MAX_FITTED_SETS = 2000
#: A query's kernel row is scaled up by at most this factor (:meth:`FieldClassifier.predict`): a best match up to
#: 4 times weaker than the reference sets' typical best match is taken for a noisier copy of a set like them. A
#: query weaker still is not; its few shared regions are mostly chance (a ChIP-seq of a factor that binds a few
#: hundred sites, most outside open chromatin), and its scores are left to fall back towards the labels' shares.
#: On the splits of ``benchmarks/evaluate.py`` an exploratory run found r2l hit@1 the same for any cap from 2 to 5
#: (3 to 5 on sets perturbed as ``benchmarks/perturb.py`` does), and at or above the uncapped scaling on every
#: field.
MAX_LIFT = 4.0
# Queries compared at a time: memory is a block × references of dense numbers, whatever the number of queries.
BLOCK = 256


@dataclass(frozen=True)
class FieldClassifier:
    """Kernel ridge classifier of one field, fitted on some reference sets (:meth:`KernelClassifier.fit`).

    Attributes
    ----------
    rows
        The reference sets it was fitted on (positions among the reference sets), ascending.
    codes
        Their label columns.
    kernel_mean
        Per fitted set, its mean kernel value with the fitted sets (the centring of the kernel).
    coefficients
        Fitted sets × labels: the dual weights.
    intercept
        Per label, the share of fitted sets carrying it.
    present
        Per label, whether a fitted set carries it (a label no fitted set carries scores 1 below the query's
        lowest other label: last, and finite for the calibration).
    alpha
        The regularisation strength chosen by leave-one-out.
    leave_one_out
        Fitted sets × labels: each fitted set's scores from the classifier fitted on the others (exact, with the
        label weights of the whole).
    typical_best
        The mean over the fitted sets of their largest kernel value with another fitted set. A query whose largest
        kernel value is below it has its kernel row scaled up to it (see :meth:`predict`).
    balance
        The power of the label-balanced targets chosen by leave-one-out (:data:`BALANCE_POWERS`).
    """

    rows: np.ndarray
    codes: np.ndarray
    kernel_mean: np.ndarray
    coefficients: np.ndarray
    intercept: np.ndarray
    present: np.ndarray
    alpha: float
    leave_one_out: np.ndarray
    typical_best: float
    balance: float

    @classmethod
    def fit(cls, kernel: np.ndarray, codes: np.ndarray, n_labels: int, rows: np.ndarray) -> FieldClassifier:
        """Fit on the fitted sets' kernel (``rows`` × ``rows``) and their label columns (``codes``, all >= 0)."""
        n = rows.size
        targets = np.zeros((n, n_labels))
        targets[np.arange(n), codes] = 1.0
        intercept = targets.mean(axis=0)
        kernel_mean = kernel.mean(axis=0)
        centred = kernel - kernel_mean[None, :] - kernel_mean[:, None] + kernel_mean.mean()
        # one eigendecomposition serves every strength: (K + a I)^-1 = V diag(1 / (w + a)) V^T
        eigenvalues, eigenvectors = np.linalg.eigh(centred)
        eigenvalues = np.maximum(eigenvalues, 0.0)  # a centred kernel is positive semi-definite; round-off is not
        projected = eigenvectors.T @ (targets - intercept)
        best = None
        for alpha in ALPHAS:
            coefficients = eigenvectors @ (projected / (eigenvalues + alpha)[:, None])
            # Exact leave-one-out of ridge regression with an unpenalised intercept: the in-sample residual over
            # 1 - h_ii, h_ii the diagonal of the hat matrix 11^T / n + K (K + a I)^-1 (the 1/n is the intercept's).
            shrink = eigenvalues / (eigenvalues + alpha)
            fitted = eigenvectors @ (projected * shrink[:, None]) + intercept
            hat = 1.0 / n + (eigenvectors**2) @ shrink
            leave_one_out = targets - (targets - fitted) / np.maximum(1.0 - hat, 1e-12)[:, None]
            error = np.mean((targets - leave_one_out) ** 2)  # as RidgeCV: smoother than hit@1 over 100s of sets
            if best is None or error < best[0]:
                best = (error, alpha, coefficients, leave_one_out)
        _, alpha, coefficients, leave_one_out = best
        present = targets.sum(axis=0) > 0
        balance, label_weights = _balanced_label_weights(leave_one_out, codes, intercept, present)
        leave_one_out = _last(leave_one_out * label_weights, present)
        others = np.where(np.eye(n, dtype=bool), -np.inf, kernel)
        typical_best = float(others.max(axis=1).mean()) if n > 1 else 0.0
        return cls(
            rows, codes, kernel_mean, coefficients, intercept, present, float(alpha), leave_one_out, typical_best,
            balance,
        )  # fmt: skip

    @property
    def label_weights(self) -> np.ndarray:
        """What each label's regression scores are multiplied by (see :data:`BALANCE_POWERS`).

        Per label, its share of the fitted sets to the power ``-balance``; 1 for a label no fitted set carries.
        """
        return _label_weights(self.intercept, self.present, self.balance)

    def predict(self, kernel: np.ndarray) -> np.ndarray:
        """Scores of queries × labels from their kernel with the fitted sets (queries × :attr:`rows`).

        A query whose best match is weaker than the fitted sets' typical best match (:attr:`typical_best`) — a
        noisier peak file, another pipeline's peaks, a shallower experiment — has its kernel row scaled up to
        it first, by :data:`MAX_LIFT` at most. Uniformly weaker overlaps would otherwise shrink its scores towards
        the intercept (the labels' shares), and the most common label would win whatever the query; scaled, its
        labels rank as its overlaps' pattern says. (``benchmarks/perturb.py`` measures this on perturbed sets.)
        A query far weaker than that keeps some of the shrinkage: its overlaps are mostly chance.
        """
        best = kernel.max(axis=1, keepdims=True) if kernel.shape[1] else np.zeros((kernel.shape[0], 1))
        lift = np.where(best > 0, np.maximum(1.0, self.typical_best / np.where(best > 0, best, 1.0)), 1.0)
        return self.scores_of(kernel * np.minimum(lift, MAX_LIFT))

    def linear_form(self, fitted: TokenRows) -> tuple[np.ndarray, np.ndarray]:
        """The scores as a linear form of a query's tokens: ``(weights, constant)``.

        ``fitted``: the fitted sets' tokens, in the order of :attr:`rows`. A query of ``n`` regions (0/1 row
        ``q``) scores ``q @ weights / sqrt(n) + constant`` (labels ⨉ per-label weights included): its scores
        without the lift of :meth:`predict` (a label no fitted set carries scores 0 here instead of last). The
        kernel is the token cosine, ``q · r / sqrt(n · n_r)``, and the dual weights of a centred kernel sum to 0
        per label, so the centring leaves only a constant. ``weights`` is universe regions × labels (float32).
        """
        if len(fitted) != self.rows.size:
            raise ValueError(f"{len(fitted)} fitted sets' tokens given for a classifier fitted on {self.rows.size}")
        sizes = fitted.sizes
        per_set = self.coefficients / np.sqrt(np.maximum(sizes, 1.0))[:, None] * self.label_weights
        weights = np.asarray(fitted.to_csr().T.astype(np.float32) @ per_set.astype(np.float32), dtype=np.float32)
        constant = (self.intercept - self.kernel_mean @ self.coefficients) * self.label_weights
        weights[:, ~self.present] = 0.0
        constant[~self.present] = 0.0
        return weights, constant

    def scores_of(self, kernel: np.ndarray) -> np.ndarray:
        """The regression's scores of kernel rows as they are (what the leave-one-out answers are)."""
        centred = kernel - kernel.mean(axis=1, keepdims=True) - self.kernel_mean[None, :] + self.kernel_mean.mean()
        return _last((centred @ self.coefficients + self.intercept) * self.label_weights, self.present)


def _balanced_label_weights(
    leave_one_out: np.ndarray, codes: np.ndarray, shares: np.ndarray, present: np.ndarray
) -> tuple[float, np.ndarray]:
    """The power of :data:`BALANCE_POWERS` whose label weights (share ** -power) put most sets' own label first."""
    absent = np.where(present, 0.0, -np.inf)  # a label no fitted set carries is never a leave-one-out answer
    best = None
    for power in BALANCE_POWERS:
        weights = _label_weights(shares, present, power)
        right = np.count_nonzero((leave_one_out * weights + absent).argmax(axis=1) == codes)
        if best is None or right > best[0]:
            best = (right, float(power), weights)
    return best[1], best[2]


def _label_weights(shares: np.ndarray, present: np.ndarray, power: float) -> np.ndarray:
    """Each label's share to the power ``-power``; 1 for a label no set carries (its share is 0)."""
    return np.where(present, shares, 1.0) ** -power


def _last(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Put the labels not ``present`` 1 below each row's lowest present label (in place; returned)."""
    if present.any() and not present.all():
        scores[:, ~present] = scores[:, present].min(axis=1, keepdims=True) - 1.0
    return scores


@dataclass(frozen=True)
class KernelClassifier:
    """One :class:`FieldClassifier` per label field, fitted on one sample of the reference sets (:meth:`fit`).

    ``n_labels``: per field, the number of labels (score columns); ``compared_rows``: the reference sets a query
    is compared with (positions among them, ascending): the union of every field's fitted sets.
    """

    fields: Mapping[str, FieldClassifier]
    n_labels: Mapping[str, int]

    @cached_property
    def compared_rows(self) -> np.ndarray:
        """The reference sets a query is compared with (positions among them, ascending): every field's fitted sets.

        The scores need a query's kernel with these sets only, and its domain is judged on them too: a query costs
        at most :data:`MAX_FITTED_SETS` comparisons however large the collection (the sample keeps a set of every
        combination of labels while it can).
        """
        return np.unique(np.concatenate([np.zeros(0, np.int64)] + [f.rows for f in self.fields.values()]))

    @classmethod
    def fit(
        cls,
        tokens,
        codes: Mapping[str, np.ndarray],
        n_labels: Mapping[str, int],
        *,
        max_sets: int,
        random_state: int,
    ) -> tuple[KernelClassifier, Comparison]:
        """Fit a classifier per field on the labelled reference sets; with the fitted sets' comparison.

        ``tokens``: the reference sets' (a :class:`~bedspace.annotate._tokens.TokenMatrix` or
        :class:`~bedspace.annotate._tokens.TokenRows`: only the fitted sets' rows are read); ``codes``: per field, each reference set's label column (-1:
        none). Beyond ``max_sets`` sets labelled in some field, one sample serves every field: the sets of each
        combination of labels in random order, dealt one combination at a time, so that every combination (and
        so every label) keeps at least one set and the large ones give up sets first. Each field is fitted on the
        sample's sets it labels: the kernel is at most ``max_sets`` × ``max_sets``.

        The comparison is of the :attr:`compared_rows` with each other, each left out of its own
        ``best_log_odds``: what a query of one of them would get (calibration's leave-one-out reuses it).
        """  # fmt: skip
        union, chosen = fitted_sample(codes, tokens.n_sets, max_sets, random_state)
        fitted = tokens.read(union)
        # A block of fitted sets at a time against the fitted sets, read in place: the memory beyond the
        # collection's tokens is a block's tokens and the kernel.
        shared = np.vstack(
            [np.zeros((0, union.size))]
            + [overlap_counts(fitted.subset(np.arange(union.size)[rows]), fitted) for rows in blocks(union.size, BLOCK)]
        )
        sizes = fitted.sizes
        among = comparison(shared, sizes, sizes, tokens.n_regions, np.arange(union.size))
        fields = {}
        for name, rows in chosen.items():
            at = np.searchsorted(union, rows)
            fields[name] = FieldClassifier.fit(
                among.kernel[np.ix_(at, at)], np.asarray(codes[name])[rows], n_labels[name], rows
            )
        return cls(fields, {f: int(n_labels[f]) for f in codes}), among

    def without(self, among: Comparison, rows: np.ndarray) -> KernelClassifier:
        """Fitted again without the reference sets ``rows``, on the comparison ``among`` that :meth:`fit` returned.

        (A field left with fewer than 2 fitted sets keeps its fit: there is nothing to refit it on.)
        """
        fields = {}
        for name, fitted in self.fields.items():
            keep = ~np.isin(fitted.rows, rows)
            if keep.sum() < 2:
                fields[name] = fitted
                continue
            at = np.searchsorted(self.compared_rows, fitted.rows[keep])
            fields[name] = FieldClassifier.fit(
                among.kernel[np.ix_(at, at)], fitted.codes[keep], self.n_labels[name], fitted.rows[keep]
            )
        return KernelClassifier(fields, self.n_labels)

    def scores(self, name: str, comparison: Comparison, own: np.ndarray | None = None) -> np.ndarray:
        """Queries × labels scores of field ``name``; a query that is a fitted set (``own``) gets its leave-one-out.

        ``comparison``: of the queries with the :attr:`compared_rows`; ``own``: per query, the reference set it is
        (a position among all reference sets), or -1.
        """
        classifier = self.fields[name]
        if classifier.rows.size == 0:  # no labelled set: nothing to tell the labels apart
            return np.zeros((comparison.kernel.shape[0], self.n_labels[name]))
        scores = classifier.predict(comparison.kernel[:, np.searchsorted(self.compared_rows, classifier.rows)])
        if own is not None:
            own = np.asarray(own)
            position = np.searchsorted(classifier.rows, own)
            fitted = (own >= 0) & (position < classifier.rows.size)
            fitted[fitted] = classifier.rows[position[fitted]] == own[fitted]
            scores[fitted] = classifier.leave_one_out[position[fitted]]
        return scores


def fitted_sample(
    codes: Mapping[str, np.ndarray], n_sets: int, max_sets: int, random_state: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sets :meth:`KernelClassifier.fit` fits on: all of them, and per field those it labels."""
    by_field = np.column_stack([np.asarray(c) for c in codes.values()] or [np.full(n_sets, -1)])
    union = _fitted_rows(by_field, max_sets, random_state)
    return union, {f: union[np.asarray(c)[union] >= 0] for f, c in codes.items()}


def _fitted_rows(codes: np.ndarray, max_sets: int, random_state: int) -> np.ndarray:
    """The rows labelled in some column of ``codes`` (sets × fields), or a sample of ``max_sets`` of them.

    The sample keeps every combination of labels while it can: each combination's sets in random order, dealt one
    combination at a time (see :meth:`KernelClassifier.fit`).
    """
    codes = np.asarray(codes).reshape(len(codes), -1)
    labelled = np.flatnonzero((codes >= 0).any(axis=1))
    if labelled.size <= max_sets:
        return labelled
    rng = np.random.default_rng(random_state)
    _, combination = np.unique(codes[labelled], axis=0, return_inverse=True)
    combination = combination.ravel()
    by_combination = [rng.permutation(labelled[combination == k]) for k in range(combination.max() + 1)]
    # round-robin over the combinations: the i-th set of every combination before the (i+1)-th of any
    order = sorted(((i, k) for k, members in enumerate(by_combination) for i in range(members.size)))
    return np.sort(np.array([by_combination[k][i] for i, k in order[:max_sets]], dtype=np.int64))
