"""The default r2l annotator: embedding and overlap evidence fused by rank, with calibrated probabilities.

Three kinds of evidence rank a field's labels for a query region set, each against the labelled reference sets:

* ``enrichment``: LOLA's test (:mod:`bedspace._enrichment`); a label ranks by its most enriched reference set;
* ``overlap_neighbors``: a Jaccard-weighted vote of the query's ``n_neighbors`` most overlapping reference sets;
* ``embedding_neighbors``: a cosine-weighted vote of its ``n_neighbors`` nearest reference sets in the embedding.

They are fused by reciprocal rank fusion (Cormack, Clarke & Büttcher 2009): a label's score is the sum over the
evidence of ``1 / (RRF_K + rank)``. Overlap evidence is right where the query comes from the pipeline of the
reference sets, the embedding where it does not; rank fusion needs no weights to fit and no scale to match. A
:class:`~bedspace._calibration.Calibrator` per field, fitted on cross-fitted predictions of the training
collection (:func:`fit_annotator`), turns the fused scores into probabilities.

A query unlike every reference set gets the labels' base rates instead, and is flagged: one whose regions barely
touch the universe (``coverage``, another genome or universe), or whose best reference set shares no more
regions with it than chance would (``best_log_odds``, a shuffled or random file). Both thresholds are fitted on
the training collection. A query of a few hundred regions carries little evidence either way: a random one that
small can pass for a small real set.

Everything here is arrays in, arrays out (CSR token matrices, unit vectors, label codes): no AnnData.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from ._calibration import Calibrator, expected_calibration_error, fit_calibrator, reliability_bins
from ._enrichment import binary_csr, enrichment_from_counts, jaccard_from_counts, overlap_counts, rank_references

EVIDENCE = ("enrichment", "overlap_neighbors", "embedding_neighbors")
N_NEIGHBORS = 5
# The constant of reciprocal rank fusion (Cormack et al. 2009); results on the hg19 benchmark hardly move with it.
RRF_K = 60
# Without a fitted annotator: a query with fewer of its regions in the universe is from another genome or universe.
MIN_COVERAGE = 0.2
# Bins of the reliability diagram kept with the annotator (about 100 held-out sets: more bins would be mostly noise).
RELIABILITY_BINS = 10
# Queries compared at a time: memory is a block × references of dense numbers, whatever the number of queries.
BLOCK = 256
FORMAT = "bedspace-annotator"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Comparison:
    """A block of queries against every reference set.

    Attributes
    ----------
    cosine
        Cosine similarity in the embedding, queries × references (``-inf`` for a query's own set).
    jaccard
        Jaccard similarity of the region tokens (``-inf`` for a query's own set).
    enrichment_rank
        Rank of each reference set by LOLA's test, 1 = most enriched (a query's own set ranks last).
    best_log_odds
        Per query, the largest log odds ratio (Haldane-corrected) of sharing regions with a reference set: about
        0 for a set that shares no more regions with any reference set than chance would.
    """

    cosine: np.ndarray
    jaccard: np.ndarray
    enrichment_rank: np.ndarray
    best_log_odds: np.ndarray


def compare(
    query_tokens: sp.csr_matrix,
    query_vectors: np.ndarray,
    reference_tokens: sp.csr_matrix,
    reference_vectors: np.ndarray,
    *,
    own: np.ndarray | None = None,
) -> Comparison:
    """Compare queries with every reference set (unit vectors; 0/1 token matrices on the same universe).

    ``own``: per query, the row of the reference set it is (left out: leave-one-out), or -1.
    """
    query, reference = binary_csr(query_tokens, name="query"), binary_csr(reference_tokens, name="reference")
    if query.shape[1] != reference.shape[1]:
        raise ValueError(f"queries have {query.shape[1]} universe regions, the reference sets {reference.shape[1]}")
    shared = overlap_counts(query, reference)
    query_sizes = np.diff(query.indptr).astype(np.float64)
    reference_sizes = np.diff(reference.indptr).astype(np.float64)
    n_regions = query.shape[1]
    jaccard = jaccard_from_counts(shared, query_sizes, reference_sizes)
    log_p, odds = enrichment_from_counts(shared, query_sizes, reference_sizes, n_regions)
    log_odds = _log_odds(shared, query_sizes, reference_sizes, n_regions)
    cosine = np.asarray(query_vectors, dtype=np.float64) @ np.asarray(reference_vectors, dtype=np.float64).T
    if own is not None:
        rows = np.flatnonzero(np.asarray(own) >= 0)
        columns = np.asarray(own)[rows]
        for matrix in (cosine, jaccard, log_odds):
            matrix[rows, columns] = -np.inf
        log_p[rows, columns] = np.inf
        odds[rows, columns] = np.nan
    best = log_odds.max(axis=1) if log_odds.shape[1] else np.zeros(log_odds.shape[0])
    return Comparison(cosine, jaccard, rank_references(log_p, odds), best)


def _log_odds(shared, query_sizes, reference_sizes, n_regions) -> np.ndarray:
    """Log odds ratio of the 2×2 table of regions, with 0.5 added to every cell (finite for empty cells)."""
    a = shared + 0.5
    b = query_sizes[:, None] - shared + 0.5
    c = reference_sizes[None, :] - shared + 0.5
    d = n_regions - query_sizes[:, None] - reference_sizes[None, :] + shared + 0.5
    return np.log(a) + np.log(np.maximum(d, 0.5)) - np.log(b) - np.log(c)


def neighbor_votes(similarity: np.ndarray, codes: np.ndarray, n_labels: int, k: int = N_NEIGHBORS) -> np.ndarray:
    """Share of a similarity-weighted vote of each query's ``k`` most similar labelled reference sets, per label."""
    labelled = np.flatnonzero(codes >= 0)
    votes = np.zeros((similarity.shape[0], n_labels))
    if labelled.size == 0 or similarity.shape[0] == 0:
        return votes
    similarity = similarity[:, labelled]
    k = min(int(k), labelled.size)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0, None) + 1e-9
    rows = np.repeat(np.arange(similarity.shape[0]), k)
    np.add.at(votes, (rows, codes[labelled][nearest].ravel()), weights.ravel())
    return votes / votes.sum(axis=1, keepdims=True)


def best_rank_by_label(ranks: np.ndarray, codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Per query and label, the best (smallest) rank of the label's reference sets (``inf`` for none)."""
    best = np.full((ranks.shape[0], n_labels), np.inf)
    labelled = np.flatnonzero(codes >= 0)
    for label in np.unique(codes[labelled]):
        best[:, label] = ranks[:, labelled[codes[labelled] == label]].min(axis=1)
    return best


def evidence(comparison: Comparison, codes: np.ndarray, n_labels: int, *, n_neighbors: int = N_NEIGHBORS) -> dict:
    """Each kind of evidence (:data:`EVIDENCE`) as queries × labels scores, larger = better."""
    return {
        "enrichment": -best_rank_by_label(comparison.enrichment_rank, codes, n_labels),
        "overlap_neighbors": neighbor_votes(comparison.jaccard, codes, n_labels, n_neighbors),
        "embedding_neighbors": neighbor_votes(comparison.cosine, codes, n_labels, n_neighbors),
    }


def fuse(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Reciprocal rank fusion of several queries × labels scores (ties share their average rank)."""
    return sum(1.0 / (RRF_K + rankdata(-s, axis=1, method="average")) for s in scores.values())


def fused_scores(comparison: Comparison, codes: np.ndarray, n_labels: int, *, n_neighbors: int = N_NEIGHBORS):
    """The annotator's score of each label of a field: the rank fusion of its evidence."""
    return fuse(evidence(comparison, codes, n_labels, n_neighbors=n_neighbors))


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
        Per field, the map from fused scores to probabilities.
    priors
        Per field, the share of the labelled reference sets carrying each label: the probabilities given to a
        query out of the domain (nothing is known of it but the base rates).
    min_log_odds
        A query whose best reference set has a log odds ratio of shared regions below this is unlike every
        reference set: half the 1st percentile of the training sets' own (leave-one-out) values.
    min_coverage
        A query with a smaller share of its regions in the universe is out of the domain: half the 1st percentile
        of the training sets' shares (:data:`MIN_COVERAGE` when they are not known).
    n_neighbors
        Neighbours voting in the neighbour evidence.
    diagnostics
        Per field, numbers of the cross-fitted predictions it was fitted on (``n``, ``hit@1``, ``ece``).
    reliability
        Per field, the reliability diagram of those predictions (:func:`~bedspace._calibration.reliability_bins`,
        10 bins): ``confidence``, ``accuracy`` and ``count`` per non-empty bin (what :func:`bedspace.pl.calibration`
        draws).
    """

    calibrators: Mapping[str, Calibrator]
    priors: Mapping[str, np.ndarray]
    min_log_odds: float
    min_coverage: float = MIN_COVERAGE
    n_neighbors: int = N_NEIGHBORS
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

    def probabilities(self, field_name: str, fused: np.ndarray, in_domain: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of a field's labels; the base rates for queries out of the domain."""
        probabilities = self.calibrators[field_name].predict_proba(fused)
        probabilities[~np.asarray(in_domain, bool)] = self.priors[field_name]
        return probabilities

    def to_dict(self) -> dict:
        """Plain values (JSON-able; for a model folder's manifest and ``AnnData.uns``)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "evidence": list(EVIDENCE),
            "rrf_k": RRF_K,
            "fields": list(self.calibrators),
            "calibrators": {f: c.to_dict() for f, c in self.calibrators.items()},
            "priors": {f: [float(x) for x in p] for f, p in self.priors.items()},
            "min_log_odds": float(self.min_log_odds),
            "min_coverage": float(self.min_coverage),
            "n_neighbors": int(self.n_neighbors),
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
            n_neighbors=int(record["n_neighbors"]),
            diagnostics=diagnostics,
        )


def fit_annotator(
    held_out: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Mapping[str, list[str]],
    priors: Mapping[str, np.ndarray],
    best_log_odds: np.ndarray,
    *,
    coverage: np.ndarray | None = None,
    n_neighbors: int = N_NEIGHBORS,
) -> Annotator:
    """Fit the calibrators and the domain from held-out (cross-fitted) predictions of the training collection.

    Parameters
    ----------
    held_out
        Per field, ``(fused scores, truth)`` of sets predicted by a model and reference that never saw them.
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
    return Annotator(calibrators, dict(priors), min_log_odds, min_coverage, int(n_neighbors), diagnostics, reliability)


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
        Per field, queries × the field's labels: fused scores (larger = better).
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


def annotate(
    query_tokens: sp.csr_matrix,
    query_vectors: np.ndarray,
    reference_tokens: sp.csr_matrix,
    reference_vectors: np.ndarray,
    codes: Mapping[str, tuple[np.ndarray, int]],
    annotator: Annotator | None,
    *,
    coverage: np.ndarray | None = None,
    own: np.ndarray | None = None,
) -> Annotation:
    """Fused scores, probabilities and domain of queries against labelled reference sets, a block at a time.

    ``codes``: per field, ``(label column of each reference set (-1: none), number of labels)``; ``coverage``:
    per query, the share of its regions in the universe (``nan``: unknown); ``own``: see :func:`compare`.
    """
    n = query_tokens.shape[0]
    coverage = np.full(n, np.nan) if coverage is None else np.asarray(coverage, dtype=np.float64)
    n_neighbors = N_NEIGHBORS if annotator is None else annotator.n_neighbors
    scores = {name: np.zeros((n, n_labels)) for name, (_, n_labels) in codes.items()}
    best = np.zeros(n)
    reference = binary_csr(reference_tokens, name="reference")  # once, not per block
    for rows in blocks(n):
        comparison = compare(
            query_tokens[rows], query_vectors[rows], reference, reference_vectors,
            own=None if own is None else own[rows],
        )  # fmt: skip
        best[rows] = comparison.best_log_odds
        for name, (field_codes, n_labels) in codes.items():
            scores[name][rows] = fused_scores(comparison, field_codes, n_labels, n_neighbors=n_neighbors)
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
