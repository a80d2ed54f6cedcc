"""The default r2l annotator: a kernel ridge classifier on region overlap, with calibrated probabilities.

A query's labels are predicted from the labelled reference sets by kernel ridge regression (a regularised
least-squares classifier, one output per label of a field) on the **token cosine**: the number of universe
regions two sets share over the geometric mean of their sizes (the cosine of their 0/1 token vectors). The
classifier's weights sit on the reference sets, so a query's scores are a weighted sum of its overlap with each
of them: like a vote of its most overlapping sets, but the weights are fitted so that the reference sets predict
each other, which keeps a large group of look-alike sets (hundreds of blood sets) from outvoting the two or three
sets that are the only ones of their label; and a rare label's target is weighted up against the common ones'
(label-balanced targets, as far as leave-one-out says it helps: :data:`BALANCE_POWERS`). A query whose best
match is weaker than the reference sets' typical best match (a noisier or shallower peak file) has its overlaps
scaled up to that first, so that uniformly weaker overlaps do not pull every answer towards the commonest label,
but by :data:`MAX_LIFT` at most: overlaps far weaker than that are mostly chance, and scaled up they would make a
label of it. The model has an intercept (the
kernel is centred) and one regularisation strength per field, chosen by exact leave-one-out over the reference
sets from :data:`ALPHAS`; the same leave-one-out scores calibrate the probabilities (:func:`fit_annotator`), so
the calibration is not fitted on answers the classifier saw (only the one balancing power was chosen on them).

``benchmarks/evaluate.py`` chose this over the earlier default (enrichment, overlap and embedding neighbours
fused by rank) and over adding the embedding's cosine to the kernel: on held-out sets of the hg19 collection it
was as good or better on every field, and it does not depend on the training seed.

A query unlike every reference set gets the labels' base rates instead, and is flagged: one whose regions barely
touch the universe (``coverage``, another genome or universe), or whose best reference set shares no more
regions with it than chance would (``best_log_odds``, a shuffled or random file). Both thresholds are fitted on
the training collection. A query of a few hundred regions carries little evidence either way: a random one that
small can pass for a small real set.

A query is compared with the classifier's fitted sets only (every labelled set up to :data:`MAX_FITTED_SETS`,
beyond that a sample keeping every combination of labels): its scores need nothing else, its domain is judged
on the same sets as the thresholds were, and its cost stops growing with the collection.

Everything here is arrays in, arrays out (CSR token matrices, label codes): no AnnData.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ._calibration import Calibrator, expected_calibration_error, fit_calibrator, reliability_bins
from ._enrichment import binary_csr, binary_rows, overlap_counts

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
# Without a fitted annotator: a query with fewer of its regions in the universe is from another genome or universe.
MIN_COVERAGE = 0.2
# Bins of the reliability diagram kept with the annotator (about 100 held-out sets: more bins would be mostly noise).
RELIABILITY_BINS = 10
# Queries compared at a time: memory is a block × references of dense numbers, whatever the number of queries.
BLOCK = 256
#: Weight of the shared-label probability beside the embedding's cosine in the default r2r
#: (:func:`shared_label_probability`). On the splits of ``benchmarks/evaluate.py`` an exploratory run of 0.25, 0.5
#: and 1 found r2r MAP growing with it on every field; 0.5 keeps the embedding's order among sets of the same labels
#: and still ranks sets of the query's labels first.
LABEL_WEIGHT = 0.5
FORMAT = "bedspace-annotator"
FORMAT_VERSION = 2
CLASSIFIER_FORMAT = "bedspace-classifier"
CLASSIFIER_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Comparison:
    """A block of queries against reference sets (the classifier's :attr:`~KernelClassifier.compared_rows`).

    Attributes
    ----------
    kernel
        Token cosine, queries × references: shared regions / sqrt(query size × reference size) (0 for an empty
        set).
    best_log_odds
        Per query, the largest log odds ratio (Haldane-corrected) of sharing regions with a compared set other
        than itself: about 0 for a set that shares no more regions with any reference set than chance would.
    """

    kernel: np.ndarray
    best_log_odds: np.ndarray


def compare(
    query_tokens: sp.csr_matrix,
    reference_tokens: sp.csr_matrix,
    *,
    own: np.ndarray | None = None,
    reference_rows: np.ndarray | None = None,
) -> Comparison:
    """Compare queries with every reference set (0/1 token matrices on the same universe).

    ``reference_rows``: the reference sets are these rows of ``reference_tokens`` (read in place); ``own``: per
    query, the reference set it is (a position among the reference sets, left out of ``best_log_odds``), or -1.
    """
    query, reference = binary_csr(query_tokens, name="query"), binary_csr(reference_tokens, name="reference")
    return _compare(query, reference, own=own, reference_rows=reference_rows)


def _compare(
    query: sp.csr_matrix, reference: sp.csr_matrix, *, own: np.ndarray | None, reference_rows: np.ndarray | None
) -> Comparison:
    """:func:`compare` of matrices :func:`~bedspace._enrichment.binary_csr` has checked (or the rows read)."""
    shared = overlap_counts(query, reference, reference_rows=reference_rows)  # checks the universes are the same
    query_sizes = np.diff(query.indptr).astype(np.float64)
    reference_sizes = np.diff(reference.indptr).astype(np.float64)
    if reference_rows is not None:
        reference_sizes = reference_sizes[np.asarray(reference_rows, dtype=np.int64)]
    return _comparison(shared, query_sizes, reference_sizes, query.shape[1], own)


def _comparison(
    shared: np.ndarray, query_sizes: np.ndarray, reference_sizes: np.ndarray, n_regions: int, own: np.ndarray | None
) -> Comparison:
    """The :class:`Comparison` of queries and reference sets from their shared regions and sizes."""
    log_odds = _log_odds(shared, query_sizes, reference_sizes, n_regions)
    if own is not None:
        rows = np.flatnonzero(np.asarray(own) >= 0)
        log_odds[rows, np.asarray(own)[rows]] = -np.inf
    best = log_odds.max(axis=1) if log_odds.shape[1] else np.zeros(log_odds.shape[0])
    return Comparison(token_cosine(shared, query_sizes, reference_sizes), best)


def token_cosine(shared: np.ndarray, query_sizes: np.ndarray, reference_sizes: np.ndarray) -> np.ndarray:
    """Cosine of 0/1 token vectors from their shared counts and sizes (0 where a set is empty)."""
    norms = np.sqrt(np.outer(query_sizes, reference_sizes))
    return np.divide(shared, norms, out=np.zeros(shared.shape), where=norms > 0)


def _log_odds(shared, query_sizes, reference_sizes, n_regions) -> np.ndarray:
    """Log odds ratio of the 2×2 table of regions, with 0.5 added to every cell (finite for empty cells)."""
    a = shared + 0.5
    b = query_sizes[:, None] - shared + 0.5
    c = reference_sizes[None, :] - shared + 0.5
    d = n_regions - query_sizes[:, None] - reference_sizes[None, :] + shared + 0.5
    return np.log(a) + np.log(np.maximum(d, 0.5)) - np.log(b) - np.log(c)


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
    """The default annotator's classifier: one :class:`FieldClassifier` per label field.

    ``n_labels``: per field, the number of labels (score columns), as in the model's label table; ``n_sets``,
    ``max_sets`` and ``random_state``: the reference sets it was fitted among and how its sample was drawn
    (:meth:`fit`). It is kept with a trained collection (:meth:`to_record`) so that a query does not refit it, and
    used again only where it fits the reference sets as they are (:meth:`from_record`).
    """

    fields: Mapping[str, FieldClassifier]
    n_labels: Mapping[str, int]
    n_sets: int = 0
    max_sets: int = MAX_FITTED_SETS
    random_state: int = 0

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
        cls, reference_tokens: sp.csr_matrix, codes: Mapping[str, tuple[np.ndarray, int]], **options
    ) -> KernelClassifier:
        """Fit a classifier per field on the labelled reference sets: :meth:`fit_compared`, without the comparison."""
        return cls.fit_compared(reference_tokens, codes, **options)[0]

    @classmethod
    def fit_compared(
        cls,
        reference_tokens: sp.csr_matrix,
        codes: Mapping[str, tuple[np.ndarray, int]],
        *,
        reference_rows: np.ndarray | None = None,
        max_sets: int = MAX_FITTED_SETS,
        random_state: int = 0,
    ) -> tuple[KernelClassifier, Comparison]:
        """Fit a classifier per field on the labelled reference sets; with the fitted sets' comparison.

        The comparison is of the :attr:`compared_rows` with each other, each left out of its own
        ``best_log_odds``: what :func:`annotate` would compute for them as queries with ``own`` (the fit has
        every number it needs, so calibration's leave-one-out does not compare those sets a second time).

        ``reference_rows``: the reference sets are these rows of ``reference_tokens`` (read in place; the
        classifier's :attr:`FieldClassifier.rows` are then positions among them). ``codes``: per field,
        ``(label column of each reference set (-1: none), number of labels)``. Beyond
        ``max_sets`` sets labelled in some field, one sample serves every field: the sets of each combination of
        labels in random order, dealt one combination at a time, so that every combination (and so every label)
        keeps at least one set and the large ones give up sets first. Each field is fitted on the sample's sets
        it labels: the kernel is at most ``max_sets`` × ``max_sets``.
        """
        n_sets = reference_tokens.shape[0] if reference_rows is None else len(reference_rows)
        union, chosen = _sample(codes, n_sets, int(max_sets), random_state)
        in_matrix = union if reference_rows is None else np.asarray(reference_rows, dtype=np.int64)[union]
        reference, in_matrix = binary_rows(reference_tokens, in_matrix, name="reference")
        sizes = np.diff(reference.indptr)[in_matrix].astype(np.float64)
        # A block of fitted sets at a time against the fitted sets, read in place: overlap_counts copies (transposes)
        # only its queries, so the memory beyond the collection's matrix is a block's tokens and the kernel.
        shared = np.vstack(
            [np.zeros((0, union.size))]
            + [
                overlap_counts(reference[in_matrix[rows]], reference, reference_rows=in_matrix)
                for rows in blocks(union.size)
            ]
        )
        among = _comparison(shared, sizes, sizes, reference.shape[1], np.arange(union.size))
        kernel = among.kernel
        fields = {}
        for name, rows in chosen.items():
            at = np.searchsorted(union, rows)
            field_codes, n_labels = codes[name]
            fields[name] = FieldClassifier.fit(kernel[np.ix_(at, at)], np.asarray(field_codes)[rows], n_labels, rows)
        classifier = cls(fields, {f: int(n) for f, (_, n) in codes.items()}, n_sets, int(max_sets), int(random_state))
        return classifier, among

    def to_record(self, reference_tokens: sp.csr_matrix) -> dict:
        """Its arrays as nested plain values and arrays (for ``AnnData.uns`` and a model folder).

        ``reference_tokens``: the reference sets it was fitted among (all rows); a fingerprint of each fitted
        set's tokens goes with it, for :meth:`from_record` to check.
        """
        return {
            "format": CLASSIFIER_FORMAT,
            "format_version": CLASSIFIER_FORMAT_VERSION,
            "n_sets": int(self.n_sets),
            "max_sets": int(self.max_sets),
            "random_state": int(self.random_state),
            "fields": list(self.fields),
            "by_field": {
                name: {
                    "n_labels": int(self.n_labels[name]),
                    "tokens": _token_fingerprint(reference_tokens, fitted.rows),
                    **{attribute: getattr(fitted, attribute) for attribute in FieldClassifier.__dataclass_fields__},
                }
                for name, fitted in self.fields.items()
            },
        }

    @classmethod
    def from_record(
        cls, record: Mapping, reference_tokens: sp.csr_matrix, codes: Mapping[str, tuple[np.ndarray, int]]
    ) -> KernelClassifier | None:
        """The classifier :meth:`to_record` kept, if it is the one :meth:`fit` would fit now; else ``None``.

        It is, when the reference sets are as many, carry the same labels (``codes`` as for :meth:`fit`), the
        same sets would be drawn, and every fitted set has the same tokens as then (a fingerprint of each).
        """
        try:
            if str(record["format"]) != CLASSIFIER_FORMAT or int(record["format_version"]) != CLASSIFIER_FORMAT_VERSION:
                return None
            names = [str(f) for f in np.atleast_1d(record["fields"])]
            n_sets, max_sets, random_state = (int(record[k]) for k in ("n_sets", "max_sets", "random_state"))
            stored = {name: dict(record["by_field"][name]) for name in names}
        except (KeyError, TypeError, ValueError):
            return None
        if names != list(codes) or n_sets != reference_tokens.shape[0]:
            return None
        _, chosen = _sample(codes, n_sets, max_sets, random_state)
        fields = {}
        for name, (field_codes, n_labels) in codes.items():
            entry = stored[name]
            try:
                fitted = FieldClassifier(
                    rows=np.asarray(entry["rows"], dtype=np.int64),
                    codes=np.asarray(entry["codes"], dtype=np.int64),
                    kernel_mean=np.asarray(entry["kernel_mean"], dtype=np.float64),
                    coefficients=np.asarray(entry["coefficients"], dtype=np.float64).reshape(-1, n_labels),
                    intercept=np.asarray(entry["intercept"], dtype=np.float64),
                    present=np.asarray(entry["present"], dtype=bool),
                    alpha=float(entry["alpha"]),
                    leave_one_out=np.asarray(entry["leave_one_out"], dtype=np.float64).reshape(-1, n_labels),
                    typical_best=float(entry["typical_best"]),
                    balance=float(entry["balance"]),
                )
                tokens = np.asarray(entry["tokens"], dtype=np.int64)
                same = int(entry["n_labels"]) == n_labels
            except (KeyError, TypeError, ValueError):
                return None
            rows = chosen[name]
            same = (
                same
                and np.array_equal(fitted.rows, rows)
                and np.array_equal(fitted.codes, np.asarray(field_codes)[rows])
                and np.array_equal(tokens, _token_fingerprint(reference_tokens, rows))
                and fitted.kernel_mean.shape == (rows.size,)
                and fitted.coefficients.shape == fitted.leave_one_out.shape == (rows.size, n_labels)
                and fitted.intercept.shape == fitted.present.shape == (n_labels,)
            )
            if not same:
                return None
            fields[name] = fitted
        return cls(fields, {f: int(n) for f, (_, n) in codes.items()}, n_sets, max_sets, random_state)

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


def record_arrays(record: Mapping) -> dict[str, np.ndarray]:
    """A :meth:`KernelClassifier.to_record` record as flat named arrays (for ``numpy.savez``; no pickle)."""
    fields = [str(f) for f in np.atleast_1d(record["fields"])]
    arrays = {
        key: np.asarray(record[key]) for key in ("format", "format_version", "n_sets", "max_sets", "random_state")
    }
    arrays["fields"] = np.array(fields, dtype=str)
    for i, name in enumerate(fields):
        arrays.update({f"field{i}/{key}": np.asarray(value) for key, value in record["by_field"][name].items()})
    return arrays


def arrays_record(arrays: Mapping[str, np.ndarray]) -> dict:
    """The record :func:`record_arrays` flattened (what :meth:`KernelClassifier.from_record` reads)."""
    fields = [str(f) for f in np.atleast_1d(arrays["fields"])]
    record = {key: arrays[key][()] for key in ("format", "format_version", "n_sets", "max_sets", "random_state")}
    by_field = {name: {} for name in fields}
    for key, value in arrays.items():
        if key.startswith("field") and "/" in key:
            index, attribute = key[len("field") :].split("/", 1)
            by_field[fields[int(index)]][attribute] = value[()] if value.ndim == 0 else value
    return {**record, "fields": fields, "by_field": by_field}


def _token_fingerprint(tokens: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Per row: its number of regions and the sum of their columns (a set whose regions changed changes them)."""
    # counts as the annotator counts them (each region once), reading only these rows
    tokens, rows = binary_rows(tokens, rows, name="reference")
    indptr, indices = tokens.indptr, tokens.indices
    return np.array(
        [(indptr[row + 1] - indptr[row], indices[indptr[row] : indptr[row + 1]].sum(dtype=np.int64)) for row in rows],
        dtype=np.int64,
    ).reshape(-1, 2)


def _sample(
    codes: Mapping[str, tuple[np.ndarray, int]], n_sets: int, max_sets: int, random_state: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sets :meth:`KernelClassifier.fit` fits on: all of them, and per field those it labels."""
    by_field = np.column_stack([np.asarray(c) for c, _ in codes.values()] or [np.full(n_sets, -1)])
    union = _fitted_rows(by_field, max_sets, random_state)
    return union, {f: union[np.asarray(c)[union] >= 0] for f, (c, _) in codes.items()}


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


def positions_in(sorted_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Position of each of ``rows`` in ``sorted_rows`` (ascending), or -1 where it is not there (or is -1)."""
    at = np.minimum(np.searchsorted(sorted_rows, rows), max(sorted_rows.size - 1, 0))
    found = (rows >= 0) & (sorted_rows.size > 0)
    found[found] = sorted_rows[at[found]] == rows[found]
    return np.where(found, at, -1)


def blocks(n: int, size: int = BLOCK) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering ``0 … n - 1``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@dataclass(frozen=True)
class Annotator:
    """Calibration and domain of the default annotator, fitted on a training collection (:func:`fit_annotator`).

    Attributes
    ----------
    calibrators
        Per field, the map from the classifier's scores to probabilities.
    priors
        Per field, the share of the labelled reference sets carrying each label: the probabilities given to a
        query out of the domain (nothing is known of it but the base rates).
    min_log_odds
        A query whose best reference set has a log odds ratio of shared regions below this is unlike every
        reference set: half the 1st percentile of the training sets' own (leave-one-out) values.
    min_coverage
        A query with a smaller share of its regions in the universe is out of the domain: half the 1st percentile
        of the training sets' shares (:data:`MIN_COVERAGE` when they are not known).
    diagnostics
        Per field, numbers of the held-out (leave-one-out or cross-fitted) predictions it was fitted on (``n``,
        ``hit@1``, ``ece``).
    reliability
        Per field, the reliability diagram of those predictions (:func:`~bedspace._calibration.reliability_bins`,
        10 bins): ``confidence``, ``accuracy`` and ``count`` per non-empty bin (what :func:`bedspace.pl.calibration`
        draws).
    """

    calibrators: Mapping[str, Calibrator]
    priors: Mapping[str, np.ndarray]
    min_log_odds: float
    min_coverage: float = MIN_COVERAGE
    diagnostics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    reliability: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        """Fields with a calibrator."""
        return list(self.calibrators)

    def in_domain(self, best_log_odds: np.ndarray, coverage: np.ndarray | None = None) -> np.ndarray:
        """Whether each query is like the reference sets (see the class docstring)."""
        inside = np.asarray(best_log_odds, dtype=np.float64) >= self.min_log_odds
        if coverage is not None:
            coverage = np.asarray(coverage, dtype=np.float64)
            inside &= ~(coverage < self.min_coverage)  # an unknown (nan) coverage does not count against a query
        return inside

    def probabilities(self, field_name: str, scores: np.ndarray, in_domain: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of a field's labels; the base rates for queries out of the domain."""
        probabilities = self.calibrators[field_name].predict_proba(scores)
        probabilities[~np.asarray(in_domain, bool)] = self.priors[field_name]
        return probabilities

    def to_dict(self) -> dict:
        """Plain values (JSON-able; for a model folder's manifest and ``AnnData.uns``)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "classifier": "kernel ridge on token cosine",
            "fields": list(self.calibrators),
            "calibrators": {f: c.to_dict() for f, c in self.calibrators.items()},
            "priors": {f: [float(x) for x in p] for f, p in self.priors.items()},
            "min_log_odds": float(self.min_log_odds),
            "min_coverage": float(self.min_coverage),
            "diagnostics": {f: {k: float(v) for k, v in d.items()} for f, d in self.diagnostics.items()},
            "reliability": {
                f: {k: [float(x) for x in np.asarray(v)] for k, v in bins.items()}
                for f, bins in self.reliability.items()
            },
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> Annotator:
        """Read what :meth:`to_dict` wrote (after a JSON or ``.h5ad`` round trip)."""
        if str(record.get("format")) != FORMAT or int(record.get("format_version", -1)) != FORMAT_VERSION:
            raise ValueError(
                f"not a bedspace annotator of format {FORMAT_VERSION} (format {record.get('format')!r}, "
                f"version {record.get('format_version')!r}): made by another bedspace version; train again"
            )
        fields = [str(f) for f in np.atleast_1d(record["fields"])]
        calibrators = {f: Calibrator.from_dict(dict(record["calibrators"][f])) for f in fields}
        priors = {f: np.asarray(record["priors"][f], dtype=np.float64) for f in fields}
        diagnostics = {str(f): {str(k): float(v) for k, v in dict(d).items()} for f, d in dict(record.get("diagnostics", {})).items()}  # fmt: skip
        reliability = {
            str(f): {str(k): np.asarray(v, dtype=np.float64) for k, v in dict(bins).items()}
            for f, bins in dict(record.get("reliability", {})).items()
        }
        return cls(
            reliability=reliability,
            calibrators=calibrators,
            priors=priors,
            min_log_odds=float(record["min_log_odds"]),
            min_coverage=float(record["min_coverage"]),
            diagnostics=diagnostics,
        )


def fit_annotator(
    held_out: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Mapping[str, list[str]],
    priors: Mapping[str, np.ndarray],
    best_log_odds: np.ndarray,
    *,
    coverage: np.ndarray | None = None,
) -> Annotator:
    """Fit the calibrators and the domain from held-out (cross-fitted) predictions of the training collection.

    Parameters
    ----------
    held_out
        Per field, ``(scores, truth)`` of sets predicted by a classifier that never saw them.
    label_names
        Per field, the labels (columns of the scores).
    priors
        Per field, the labels' base rates.
    best_log_odds
        :attr:`Comparison.best_log_odds` of the held-out sets (all of them in-domain by construction).
    coverage
        Share of each training set's regions in the universe, if known.

    Both domain thresholds are half the 1st percentile of the training sets' values: a query must look at least
    half as much like the collection as its least typical members do.
    """
    calibrators, diagnostics, reliability = {}, {}, {}
    for name, (scores, truth) in held_out.items():
        known = truth >= 0
        if known.sum() < 2:
            raise ValueError(f"field {name!r}: fewer than 2 labelled sets to calibrate on")
        scores, truth = scores[known], truth[known]
        calibrator = fit_calibrator(scores, truth, labels=label_names[name], field=name)
        probabilities = calibrator.predict_proba(scores)
        calibrators[name] = calibrator
        diagnostics[name] = {
            "n": float(truth.size),
            "hit@1": float(np.mean(probabilities.argmax(axis=1) == truth)),
            "ece": expected_calibration_error(probabilities, truth),
        }
        bins = reliability_bins(probabilities, truth, n_bins=RELIABILITY_BINS)
        bins = bins[bins["count"] > 0]  # empty bins have no confidence or accuracy (nan) to keep
        reliability[name] = {column: bins[column].to_numpy() for column in ("confidence", "accuracy", "count")}
    min_log_odds = _half_low_percentile(best_log_odds, default=0.0)
    min_coverage = MIN_COVERAGE if coverage is None else _half_low_percentile(coverage, default=MIN_COVERAGE)
    return Annotator(calibrators, dict(priors), min_log_odds, min_coverage, diagnostics, reliability)


def _half_low_percentile(values, *, default: float) -> float:
    """Half the 1st percentile of the finite values (``default`` when there are none)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return 0.5 * float(np.quantile(finite, 0.01)) if finite.size else default


def stratified_folds(codes: np.ndarray, n_folds: int, random_state: int) -> np.ndarray:
    """Fold of each set (0 … n_folds - 1), each label's sets dealt round-robin in random order."""
    rng = np.random.default_rng(random_state)
    folds = np.empty(codes.size, np.int64)
    offset = 0
    for label in np.unique(codes):
        members = rng.permutation(np.flatnonzero(codes == label))
        folds[members] = (np.arange(members.size) + offset) % n_folds
        offset += members.size
    return folds


@dataclass(frozen=True)
class Annotation:
    """The annotator's answer for some queries.

    Attributes
    ----------
    scores
        Per field, queries × the field's labels: the classifier's scores (larger = better).
    probabilities
        Per field, calibrated probabilities (base rates for queries out of the domain); empty without annotator.
    in_domain
        Per query, whether it is like the reference sets.
    best_log_odds, coverage
        Per query, what the domain was judged on.
    """

    scores: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray]
    in_domain: np.ndarray
    best_log_odds: np.ndarray
    coverage: np.ndarray

    def ranking(self, name: str) -> np.ndarray:
        """Queries × labels of field ``name`` as the annotator ranks them: probabilities when calibrated, else scores."""
        return self.probabilities.get(name, self.scores[name])


def shared_label_probability(
    probabilities: Mapping[str, np.ndarray],
    reference_codes: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Queries × reference sets: the probability that the query carries the set's label, averaged over the fields.

    ``probabilities``: per field, the queries' calibrated label probabilities; ``reference_codes``: per field,
    each reference set's label column (-1: none); ``priors``: per field, the labels' base rates. A reference set
    without a label in a field is taken to carry one drawn from the base rates (probability ``P · priors``), so an
    unlabelled set is neither favoured nor penalised. This is what the default r2r adds to the embedding's
    cosine (:data:`LABEL_WEIGHT`): sets of the query's cell type, tissue and assay first, in the embedding's order.
    """
    if not probabilities:
        raise ValueError("no label probabilities to compare the queries with the reference sets by")
    total = None
    for name, field_probabilities in probabilities.items():
        codes = np.asarray(reference_codes[name])
        unknown = field_probabilities @ np.asarray(priors[name], dtype=np.float64)
        shared = np.where(codes[None, :] >= 0, field_probabilities[:, np.maximum(codes, 0)], unknown[:, None])
        total = shared if total is None else total + shared
    return total / len(probabilities)


def annotate(
    query_tokens: sp.csr_matrix,
    reference_tokens: sp.csr_matrix,
    classifier: KernelClassifier,
    annotator: Annotator | None,
    *,
    query_rows: np.ndarray | None = None,
    reference_rows: np.ndarray | None = None,
    coverage: np.ndarray | None = None,
    own: np.ndarray | None = None,
) -> Annotation:
    """Scores, probabilities and domain of queries against the labelled reference sets, a block at a time.

    Each query is compared with the classifier's :attr:`~KernelClassifier.compared_rows` only (its fitted sets).

    ``classifier``: fitted on the reference sets (with the same ``reference_rows``); ``query_rows`` and
    ``reference_rows``: the queries and the reference sets are these rows of ``query_tokens`` and
    ``reference_tokens`` (read a block at a time, in place: a collection annotated against itself costs no copy
    of its matrix); ``coverage``: per query, the share of its regions in the universe (``nan``: unknown);
    ``own``: per query, the reference set it is (a position among them; it is then annotated from the others:
    leave-one-out), or -1.
    """
    n = query_tokens.shape[0] if query_rows is None else len(query_rows)
    coverage = np.full(n, np.nan) if coverage is None else np.asarray(coverage, dtype=np.float64)
    scores = {name: np.zeros((n, n_labels)) for name, n_labels in classifier.n_labels.items()}
    best = np.zeros(n)
    compared = classifier.compared_rows
    compared_in_matrix = compared if reference_rows is None else np.asarray(reference_rows, dtype=np.int64)[compared]
    # once, not per block, and only the sets compared: not every set of a large collection
    reference, compared_in_matrix = binary_rows(reference_tokens, compared_in_matrix, name="reference")
    own_compared = None if own is None else positions_in(compared, np.asarray(own, dtype=np.int64))
    for rows in blocks(n):
        block_own = None if own is None else np.asarray(own)[rows]
        block = query_tokens[rows] if query_rows is None else query_tokens[np.asarray(query_rows)[rows]]
        block_own_compared = None if own is None else own_compared[rows]
        block = binary_csr(block, name="query")
        comparison = _compare(block, reference, own=block_own_compared, reference_rows=compared_in_matrix)
        best[rows] = comparison.best_log_odds
        for name in scores:
            scores[name][rows] = classifier.scores(name, comparison, block_own)
    if annotator is None:
        in_domain = ~(coverage < MIN_COVERAGE)
        probabilities = {}
    else:
        in_domain = annotator.in_domain(best, coverage)
        probabilities = {
            name: annotator.probabilities(name, values, in_domain)
            for name, values in scores.items()
            if name in annotator.calibrators
        }
    return Annotation(scores, probabilities, in_domain, best, coverage)
