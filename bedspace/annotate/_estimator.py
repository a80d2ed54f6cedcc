"""``RegionAnnotator``: bedspace's default r2l annotator as one estimator, in scikit-learn's conventions.

Fitted on a collection's tokens and labels, it predicts a query set's labels from the sets it shares regions
with (kernel ridge on the token cosine, :mod:`~bedspace.annotate._ridge`), turns the scores into calibrated
probabilities (fitted on its own exact leave-one-out answers, :mod:`~bedspace.annotate._calibration`) and says
whether a query is like the collection at all. Options are stored and checked in ``__init__``; :meth:`fit`
returns the estimator; everything fitted is an attribute ending in ``_``; :meth:`to_record` /
:meth:`from_record` are its one saved form, which refuses tokens other than those it was fitted on.

A query unlike every reference set is flagged and gets no probability (``nan``: the annotator abstains): one
whose regions barely touch the universe (``coverage``, another genome or universe), or whose best reference set
shares no more regions with it than chance would (``best_log_odds``, a shuffled or random file, or peaks so noisy
that the overlaps' pattern is lost). Both thresholds are fitted on the collection. Its labels are still ranked,
by enrichment (the p-value of each label's best reference set, LOLA's order): where a query's overlaps are too
weak for the classifier, many weak ones can still point to a label (``benchmarks/perturb.py``). A query of a few
hundred regions carries little evidence either way: a random one that small can pass for a small real set.

A query is compared with the classifier's fitted sets only (every labelled set up to
:data:`~bedspace.annotate._ridge.MAX_FITTED_SETS`, beyond that a sample keeping every combination of labels): its
scores need nothing else, its domain is judged on the same sets as the thresholds were, and its cost stops
growing with the collection. Only those sets' tokens are ever read for it.

``benchmarks/evaluate.py`` chose this annotator over the earlier default (enrichment, overlap and embedding
neighbours fused by rank) and over adding the embedding's cosine to the kernel: on held-out sets of the hg19
collection it was as good or better on every field, and it does not depend on the training seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._logging import info
from .._params import whole_number
from .._plain import plain
from ._baselines import aggregate_by_label, enrichment_from_counts
from ._calibration import Calibrator, expected_calibration_error, fit_calibrator, reliability_bins
from ._evidence import FEW_REGIONS, FOLDS, FULL, MAX_SETS, Chromosomes, Evidence, SubFiles
from ._kernel import Comparison, comparison, overlap_counts
from ._ridge import BLOCK, MAX_FITTED_SETS, FieldClassifier, KernelClassifier
from ._tokens import TokenMatrix, TokenRows, blocks, positions_in

FORMAT = "bedspace-annotator"
FORMAT_VERSION = 3
#: Leave-one-out calibration annotates at most this many of the collection's sets (a random share beyond): the
#: fit needs hundreds of held-out answers, not all.
MAX_QUERIES = 2000
#: Fewer labelled sets than this are too few to calibrate on: the annotator then gives scores, no probabilities.
MIN_SETS_TO_CALIBRATE = 10
# Without a fitted domain: a query with fewer of its regions in the universe is from another genome or universe.
MIN_COVERAGE = 0.2
# Bins of the reliability diagram kept with the annotator (about 100 held-out sets: more bins would be mostly noise).
RELIABILITY_BINS = 10
#: Weight of the shared-label probability beside the embedding's cosine in the default r2r
#: (:meth:`RegionAnnotator.shared_labels`). On the splits of ``benchmarks/evaluate.py`` an exploratory run of
#: 0.25, 0.5 and 1 found r2r MAP growing with it on every field; 0.5 keeps the embedding's order among sets of the
#: same labels and still ranks sets of the query's labels first.
LABEL_WEIGHT = 0.5
_FIELD_ARRAYS = ("rows", "codes", "kernel_mean", "coefficients", "intercept", "present", "leave_one_out")
_FIELD_NUMBERS = ("alpha", "typical_best", "balance")


@dataclass(frozen=True)
class Annotation:
    """The annotator's answer for some queries.

    Attributes
    ----------
    scores
        Per field, queries × the field's labels: the classifier's scores (larger = better).
        For a query out of the domain: enrichment's scores (minus the rank of each label's best reference set by
        its enrichment p-value, plus a tie-break in [0, 1)).
    probabilities
        Per field, calibrated probabilities; ``nan`` for queries out of the domain (no probability: the annotator
        abstains); empty when uncalibrated.
    in_domain
        Per query, whether it is like the reference sets.
    best_log_odds, coverage
        Per query, what the domain was judged on.
    evidence
        Per query, ``"full"``, ``"few regions"`` or ``"one chromosome"``: flagged queries get no probability above
        what sub-files of the reference sets like them earned (see :mod:`~bedspace.annotate._evidence`); ``None``
        when the annotator did not measure that.
    """

    scores: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray]
    in_domain: np.ndarray
    best_log_odds: np.ndarray
    coverage: np.ndarray
    evidence: np.ndarray | None = None

    def ranking(self, name: str) -> np.ndarray:
        """Queries × labels of field ``name`` as the annotator ranks them: probabilities when calibrated, else scores.

        A query out of the domain is ranked by its enrichment scores, placed below every query in it (so that l2r,
        which ranks queries for a label, lists the answers it can vouch for first).
        """
        ranked = self.probabilities.get(name, self.scores[name])
        outside = ~np.asarray(self.in_domain, bool)
        if not outside.any():
            return ranked
        ranked = ranked.copy()
        inside = ranked[~outside]
        floor = float(inside.min()) if inside.size else 0.0
        ranked[outside] = floor - 1.0 + self.scores[name][outside]  # enrichment scores are < 0: below the floor
        return ranked


class RegionAnnotator:
    """Annotate region sets from the labelled sets they share universe regions with.

    Parameters
    ----------
    max_sets
        The classifier is fitted on at most this many labelled sets (a sample keeping every combination of
        labels beyond): its fit costs sets³, a query ``max_sets`` comparisons.
    max_queries
        Leave-one-out calibration annotates at most this many sets (a random share beyond).
    n_folds
        ``None``: calibrate on exact leave-one-out answers (no refit). An integer >= 2: on answers of
        classifiers fitted on the other folds (stratified by the first field; a little pessimistic).
    calibrate
        Fit calibrated probabilities and the domain; ``False``: scores only (the domain then is the share of a
        query's regions in the universe alone).
    evidence
        With calibration, also measure what sub-files of the reference sets earn (a few regions of a set, or its
        regions on one chromosome, annotated by classifiers fitted without it): a query with as little evidence
        is flagged and gets no probability above that (:attr:`evidence_`).
    random_state
        Seed of the classifier's sample, the calibration's sample and the folds.

    Attributes
    ----------
    fields_
        The label fields, in order.
    label_names_
        Per field, its labels (the score and probability columns).
    codes_
        Per field, each reference set's label column (-1: none).
    n_sets_, n_regions_
        Reference sets and universe regions it was fitted on.
    classifier_
        The kernel ridge classifier of each field (:class:`~bedspace.annotate._ridge.KernelClassifier`).
    fingerprint_
        Per compared set, its number of regions and the sum of their columns: what :meth:`from_record` checks.
    calibrators_
        Per field, the map from scores to probabilities (empty when not calibrated).
    priors_
        Per field, the share of the labelled sets carrying each label: the probabilities of a query out of the
        domain.
    min_log_odds_, min_coverage_
        The domain: a query whose best reference set has a log odds ratio of shared regions below
        ``min_log_odds_``, or with a smaller share of its regions in the universe than ``min_coverage_``, is
        unlike the collection (each half the 1st percentile of the collection's own held-out values).
    evidence_
        What sub-files of the reference sets earned, per field and size (:class:`~bedspace.annotate._evidence.Evidence`),
        or ``None`` (not calibrated, or ``evidence=False``).
    diagnostics_, reliability_
        Per field, numbers of the held-out predictions the calibration was fitted on (``n``, ``hit@1``, ``ece``)
        and their reliability diagram (``confidence``, ``accuracy``, ``count`` per non-empty bin).

    Examples
    --------
    >>> annotator = RegionAnnotator().fit(tokens, {"organ": codes}, {"organ": names})  # doctest: +SKIP
    >>> annotator.predict_proba(query_tokens)["organ"]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        max_sets: int = MAX_FITTED_SETS,
        max_queries: int = MAX_QUERIES,
        n_folds: int | None = None,
        calibrate: bool = True,
        evidence: bool = True,
        random_state: int = 0,
    ):
        self.max_sets = whole_number(max_sets, "max_sets")
        self.max_queries = whole_number(max_queries, "max_queries")
        if n_folds is not None:
            whole_number(n_folds, "n_folds", minimum=2, expected="None (leave-one-out) or a whole number >= 2")
        self.n_folds = None if n_folds is None else int(n_folds)
        if not isinstance(calibrate, bool | np.bool_):
            raise ValueError(f"calibrate must be True or False, got {calibrate!r}")
        self.calibrate = bool(calibrate)
        if not isinstance(evidence, bool | np.bool_):
            raise ValueError(f"evidence must be True or False, got {evidence!r}")
        self.evidence = bool(evidence)
        self.random_state = whole_number(random_state, "random_state", minimum=0, expected="an integer >= 0")
        self._tokens: TokenMatrix | None = None
        self._compared: TokenRows | None = None
        self._reference_annotation: Annotation | None = None
        self._chromosomes: Chromosomes | None = None

    def __repr__(self) -> str:
        options = f"max_sets={self.max_sets}, n_folds={self.n_folds}, calibrate={self.calibrate}"
        if not self.is_fitted:
            return f"RegionAnnotator({options}, unfitted)"
        return f"RegionAnnotator({options}; fitted on {self.n_sets_:,} sets, fields {self.fields_})"

    # -- fitting ----------------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_record`) made it ready to annotate."""
        return hasattr(self, "classifier_")

    @property
    def is_calibrated(self) -> bool:
        """Whether it gives calibrated probabilities."""
        self._check_fitted()
        return bool(self.calibrators_)

    def fit(
        self,
        tokens,
        codes: Mapping[str, Sequence[int]],
        label_names: Mapping[str, Sequence[str]],
        *,
        coverage: np.ndarray | None = None,
        chromosomes: np.ndarray | None = None,
    ) -> RegionAnnotator:
        """Fit on a collection: its tokens and, per field, each set's label.

        Parameters
        ----------
        tokens
            Sets × universe regions (any nonzero: the set has the region): a scipy matrix, a :class:`TokenMatrix`
            (memory-mapped or an ``.h5ad`` file's rows) or an AnnData's backed ``X``. Read in place; only the
            fitted and calibration sets' rows are read.
        codes
            Per field, each set's label column (-1: none).
        label_names
            Per field, the labels (columns).
        coverage
            Per set, the share of its regions in the universe (for the domain), if known.
        chromosomes
            Per universe region, its chromosome (any values), if known: a query on one chromosome is then flagged
            (``evidence``).

        Returns
        -------
        The fitted estimator.
        """
        tokens = TokenMatrix.of(tokens)
        fields = list(codes)
        if not fields:
            raise ValueError("no label field to annotate: give the codes of at least one field")
        codes = {f: np.asarray(codes[f], dtype=np.int64) for f in fields}
        names = {f: [str(n) for n in label_names[f]] for f in fields}
        for f in fields:
            if codes[f].shape != (tokens.n_sets,):
                raise ValueError(f"field {f!r}: {codes[f].size} label codes for {tokens.n_sets} sets")
            if codes[f].size and codes[f].max() >= len(names[f]):
                raise ValueError(f"field {f!r}: a label code is {codes[f].max()}, past its {len(names[f])} labels")
        n_labels = {f: len(names[f]) for f in fields}
        if chromosomes is not None and np.shape(chromosomes) != (tokens.n_regions,):
            raise ValueError(f"{np.size(chromosomes)} chromosomes given for {tokens.n_regions} universe regions")
        self._chromosomes = None if chromosomes is None else Chromosomes.of(chromosomes)
        classifier, among = KernelClassifier.fit(
            tokens, codes, n_labels, max_sets=self.max_sets, random_state=self.random_state
        )
        self._set_fitted(tokens, tokens.read(classifier.compared_rows), fields, names, codes, classifier)
        labelled = np.column_stack([codes[f] >= 0 for f in fields]).any(axis=1)
        rows = np.flatnonzero(labelled & (tokens.n_tokens > 0))
        coverage = None if coverage is None else np.asarray(coverage, dtype=np.float64)[rows]
        self._fit_calibration(tokens, rows, among, coverage)
        return self

    def _set_fitted(
        self, tokens: TokenMatrix, compared: TokenRows | None, fields, names, codes, classifier, fingerprint=None
    ) -> None:
        self._tokens = tokens
        self._compared = compared
        self._reference_annotation = None
        self.fields_ = list(fields)
        self.label_names_ = dict(names)
        self.codes_ = dict(codes)
        self.n_sets_ = tokens.n_sets
        self.n_regions_ = tokens.n_regions
        self.classifier_ = classifier
        self.fingerprint_ = compared.fingerprint() if fingerprint is None else fingerprint

    def _fit_calibration(self, tokens: TokenMatrix, rows: np.ndarray, among: Comparison, coverage) -> None:
        """Calibrators, priors and domain from held-out answers of the labelled sets ``rows``."""
        fields = self.fields_
        counts = {}  # per field, the labelled sets carrying each label
        for f in fields:
            labelled = self.codes_[f][rows]
            counts[f] = np.bincount(labelled[labelled >= 0], minlength=len(self.label_names_[f]))
        self.priors_ = {f: counts[f] / max(counts[f].sum(), 1) for f in fields}
        self.calibrators_, self.diagnostics_, self.reliability_ = {}, {}, {}
        self.min_log_odds_, self.min_coverage_ = -np.inf, MIN_COVERAGE
        self.evidence_ = None
        if not self.calibrate:
            return
        if rows.size < MIN_SETS_TO_CALIBRATE:
            info(f"not calibrated: {rows.size} labelled sets are too few (the annotator needs {MIN_SETS_TO_CALIBRATE})")
            return
        if self.n_folds is None:
            picked = np.arange(rows.size)
            if rows.size > self.max_queries:
                rng = np.random.default_rng(self.random_state)
                picked = np.sort(rng.choice(rows.size, self.max_queries, replace=False))
            held_scores, best_log_odds = self._left_out(tokens, rows[picked], among)
        else:
            picked = np.arange(rows.size)
            held_scores, best_log_odds = self._cross_fitted(tokens, rows)
        for f in fields:
            # A set whose label no other set carries cannot be annotated right by any annotator: leave it out of
            # the fit, as a query of a label the collection lacks is out of what the probabilities can speak for.
            mine = self.codes_[f][rows[picked]]
            truth = np.where((mine >= 0) & (counts[f][np.maximum(mine, 0)] >= 2), mine, -1)
            self._fit_field(f, held_scores[f], truth, np.isin(rows[picked], self.classifier_.fields[f].rows))
        self.min_log_odds_ = _half_low_percentile(best_log_odds, default=0.0)
        if coverage is not None:
            self.min_coverage_ = _half_low_percentile(coverage, default=MIN_COVERAGE)
        summary = ", ".join(f"{f} hit@1 {d['hit@1']:.2f} ECE {d['ece']:.3f}" for f, d in self.diagnostics_.items())
        how = "leave-one-out" if self.n_folds is None else f"{self.n_folds} folds"
        info(f"calibrated the annotator on {picked.size} held-out annotations ({how}): {summary}")
        if self.evidence:
            self.evidence_ = self._fit_evidence(among, rows, counts)

    def _fit_evidence(self, among: Comparison, rows: np.ndarray, counts: Mapping[str, np.ndarray]) -> Evidence:
        """What sub-files of fitted sets earn (:class:`~bedspace.annotate._evidence.Evidence`).

        Up to :data:`~bedspace.annotate._evidence.MAX_SETS` fitted sets are cut; each sub-file is annotated by the
        classifier fitted again (on the kernel the fit computed) without the fold of sets it was cut from.
        """
        classifier, compared = self.classifier_, self._compared
        candidates = np.flatnonzero(np.isin(classifier.compared_rows, rows))
        rng = np.random.default_rng(self.random_state)
        if candidates.size > MAX_SETS:
            candidates = np.sort(rng.choice(candidates, MAX_SETS, replace=False))
        sources = classifier.compared_rows[candidates]
        cut = SubFiles.cut(compared.subset(candidates), self._chromosomes, rng)
        folds = stratified_folds(self.codes_[self.fields_[0]][sources], FOLDS, self.random_state)
        scores = {f: np.zeros((len(cut.tokens), n)) for f, n in classifier.n_labels.items()}
        best = np.zeros(len(cut.tokens))
        for fold in range(FOLDS):
            held = np.flatnonzero(folds[cut.source] == fold)
            if held.size == 0:
                continue
            fold_classifier = classifier.without(among, sources[folds == fold])
            kept = positions_in(classifier.compared_rows, fold_classifier.compared_rows)
            part, best[held] = _score_blocks(fold_classifier, compared.subset(kept), cut.tokens.subset(held), None)
            for f in scores:
                scores[f][held] = part[f]
        in_domain = best >= self.min_log_odds_
        truth = {}
        for f in self.calibrators_:
            mine = self.codes_[f][sources[cut.source]]
            truth[f] = np.where((mine >= 0) & (counts[f][np.maximum(mine, 0)] >= 2), mine, -1)
        probabilities = {f: c.predict_proba(scores[f]) for f, c in self.calibrators_.items()}
        evidence = Evidence.fit(cut, probabilities, in_domain, truth, self._chromosomes, compared.sizes)
        info(
            f"measured the evidence of {len(cut.tokens):,} sub-files of {sources.size} sets: queries of fewer than "
            f"{evidence.min_regions:,} regions" + (" or of one chromosome" if evidence.one_chromosome else "")
            + " are flagged"
        )  # fmt: skip
        return evidence

    def _fit_field(self, name: str, scores: np.ndarray, truth: np.ndarray, fitted: np.ndarray) -> None:
        """Calibrate field ``name`` on held-out ``scores`` of sets with label ``truth`` (-1: left out).

        ``fitted``: per set, whether it is one of the classifier's fitted sets (its answer then rested on one set
        fewer of its own label: the support step counts that).
        """
        known = truth >= 0
        if known.sum() < 2:
            raise ValueError(f"field {name!r}: fewer than 2 labelled sets to calibrate on")
        scores, truth, fitted = scores[known], truth[known], fitted[known]
        classifier = self.classifier_.fields[name]
        support = np.bincount(classifier.codes, minlength=len(self.label_names_[name]))
        top = scores.argmax(axis=1)
        top_support = support[top] - (fitted & (top == truth))
        calibrator = fit_calibrator(
            scores, truth, labels=self.label_names_[name], field=name, support=support, top_support=top_support
        )
        probabilities = calibrator.predict_proba(scores, top_support=top_support)
        self.calibrators_[name] = calibrator
        self.diagnostics_[name] = {
            "n": float(truth.size),
            "hit@1": float(np.mean(probabilities.argmax(axis=1) == truth)),
            "ece": expected_calibration_error(probabilities, truth),
        }
        bins = reliability_bins(probabilities, truth, n_bins=RELIABILITY_BINS)
        bins = bins[bins["count"] > 0]  # empty bins have no confidence or accuracy (nan) to keep
        self.reliability_[name] = {column: bins[column].to_numpy() for column in ("confidence", "accuracy", "count")}

    def _left_out(self, tokens: TokenMatrix, queries: np.ndarray, among: Comparison):
        """Leave-one-out scores and best log odds of the reference sets ``queries``.

        The classifier's fitted sets were compared with each other by its fit (``among``): their answers come
        from those numbers; only the other sets (unlabelled ones, or beyond the fitted sample) are compared again.
        """
        classifier = self.classifier_
        at = positions_in(classifier.compared_rows, queries)
        fitted = at >= 0
        held_scores = {name: np.zeros((queries.size, n)) for name, n in classifier.n_labels.items()}
        best_log_odds = np.zeros(queries.size)
        known = among.rows(at[fitted])
        best_log_odds[fitted] = known.best_log_odds
        for name in held_scores:
            held_scores[name][fitted] = classifier.scores(name, known, queries[fitted])
        if not fitted.all():
            result = self._scores(tokens.read(queries[~fitted]), own=queries[~fitted])
            best_log_odds[~fitted] = result[1]
            for name in held_scores:
                held_scores[name][~fitted] = result[0][name]
        return held_scores, best_log_odds

    def _cross_fitted(self, tokens: TokenMatrix, rows: np.ndarray):
        """Scores of each labelled set (``rows``) by a classifier fitted on the other folds, against them."""
        folds = stratified_folds(self.codes_[self.fields_[0]][rows], self.n_folds, self.random_state)
        if np.bincount(folds, minlength=self.n_folds).min() < 1:
            raise ValueError(f"{rows.size} labelled sets are too few for {self.n_folds} folds")
        labelled = tokens.read(rows)
        n_labels = {f: len(self.label_names_[f]) for f in self.fields_}
        held_scores = {f: np.zeros((rows.size, n_labels[f])) for f in self.fields_}
        best_log_odds = np.zeros(rows.size)
        for fold in range(self.n_folds):
            held, kept = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
            info(f"calibrate: fold {fold + 1} of {self.n_folds}, fitted on {kept.size} sets")
            fold_reference = labelled.subset(kept)
            classifier, _ = KernelClassifier.fit(
                fold_reference, {f: self.codes_[f][rows[kept]] for f in self.fields_}, n_labels,
                max_sets=self.max_sets, random_state=self.random_state,
            )  # fmt: skip
            compared = fold_reference.subset(classifier.compared_rows)
            scores, best = _score_blocks(classifier, compared, labelled.subset(held), None)
            for f in self.fields_:
                held_scores[f][held] = scores[f]
            best_log_odds[held] = best
        return held_scores, best_log_odds

    # -- annotating -------------------------------------------------------------------------------------------
    def annotate(self, tokens, *, coverage: np.ndarray | None = None, own: np.ndarray | None = None) -> Annotation:
        """Scores, probabilities and domain of queries (sets × the same universe regions), a block at a time.

        ``coverage``: per query, the share of its regions in the universe (``nan``: unknown); ``own``: per query,
        the reference set it is (annotated from the others: leave-one-out), or -1.
        """
        self._check_fitted()
        queries = tokens if isinstance(tokens, TokenRows) else TokenMatrix.of(tokens)
        if queries.n_regions != self.n_regions_:
            raise ValueError(f"queries have {queries.n_regions} universe regions, the annotator {self.n_regions_}")
        n = queries.n_sets
        scores = {name: np.zeros((n, n_labels)) for name, n_labels in self.classifier_.n_labels.items()}
        best, sizes, evidence, one = np.zeros(n), np.zeros(n), np.full(n, FULL, dtype=object), np.full(n, -1)
        for rows, part in _parts(queries):
            part_scores, best[rows] = self._scores(part, own=None if own is None else np.asarray(own)[rows])
            for name in scores:
                scores[name][rows] = part_scores[name]
            sizes[rows] = part.sizes
            if self.evidence_ is not None:
                evidence[rows], one[rows] = self.evidence_.judge(part)
        if own is not None:  # a reference set annotated from the others has a whole set's evidence
            evidence[np.asarray(own) >= 0], one[np.asarray(own) >= 0] = FULL, -1
        coverage = np.full(n, np.nan) if coverage is None else np.asarray(coverage, dtype=np.float64)
        in_domain = np.asarray(best, dtype=np.float64) >= self.min_log_odds_
        in_domain &= ~(coverage < self.min_coverage_)  # an unknown (nan) coverage does not count against a query
        outside = np.flatnonzero(~in_domain)
        if outside.size:
            fallback = self._enrichment_scores(queries, outside, None if own is None else np.asarray(own)[outside])
            for name in scores:
                scores[name][outside] = fallback[name]
        probabilities = {}
        for name, calibrator in self.calibrators_.items():
            probabilities[name] = calibrator.predict_proba(scores[name])
            if (evidence != FULL).any():
                few = evidence == FEW_REGIONS
                probabilities[name] = self.evidence_.limit(name, probabilities[name], sizes, few, one)
            probabilities[name][~in_domain] = np.nan
        return Annotation(scores, probabilities, in_domain, best, coverage, evidence if self.evidence_ else None)

    def _enrichment_scores(self, queries, rows: np.ndarray, own: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per field, enrichment's label scores of the queries at ``rows`` against the compared sets.

        What ranks the labels of a query out of the domain: the Fisher test's p-value of each label's best
        reference set (:func:`~bedspace.annotate._baselines.label_enrichment`'s order). A reference set annotated
        from the others (``own``) is left out of its own ranking.
        """
        part = queries.subset(rows) if isinstance(queries, TokenRows) else queries.read(rows)
        compared = self.compared_sets()
        log_pvalue, odds = enrichment_from_counts(
            overlap_counts(part, compared), part.sizes, compared.sizes, compared.n_regions
        )
        if own is not None:
            at = positions_in(self.classifier_.compared_rows, np.asarray(own))
            mine = np.flatnonzero(at >= 0)
            log_pvalue[mine, at[mine]], odds[mine, at[mine]] = 0.0, 0.0  # p = 1: never a set's own best match
        return {
            name: aggregate_by_label(log_pvalue, odds, self.codes_[name][self.classifier_.compared_rows], n).scores()
            for name, n in self.classifier_.n_labels.items()
        }

    def _scores(self, queries: TokenRows, own: np.ndarray | None):
        own_compared = None if own is None else positions_in(self.classifier_.compared_rows, own)
        return _score_blocks(self.classifier_, self.compared_sets(), queries, own, own_compared)

    def compared_sets(self) -> TokenRows:
        """The tokens of the sets a query is compared with (a model folder's are read on the first query)."""
        if self._compared is None:
            self._compared = self._tokens.read(self.classifier_.compared_rows)
        return self._compared

    def score_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per field, its label scores as a linear form of a query's tokens: ``(weights, constant)``.

        A query of ``n`` regions (0/1 row ``q``) scores ``q @ weights / sqrt(n) + constant``: what
        :meth:`annotate` scores it, without the scaling up of a query weaker than the fitted sets' typical match
        (see :meth:`~bedspace.annotate._ridge.FieldClassifier.predict`). ``weights``: universe regions × the
        field's labels (float32); ``constant``: per label. ``bs.tl.train`` makes its default joint space of them.
        """
        self._check_fitted()
        compared = self.compared_sets()
        forms = {}
        for name in self.fields_:
            field = self.classifier_.fields[name]
            fitted = compared.subset(positions_in(self.classifier_.compared_rows, field.rows))
            forms[name] = field.linear_form(fitted)
        return forms

    def predict_proba(self, tokens, *, coverage: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per field, queries × labels: calibrated probabilities (``nan`` for a query out of the domain)."""
        if not self.is_calibrated:
            raise ValueError(
                "this annotator was fitted with calibrate=False: it gives scores (annotate), no probabilities"
            )
        return self.annotate(tokens, coverage=coverage).probabilities

    def predict(self, tokens, *, coverage: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per field, each query's most likely label (by probability when calibrated, else by score)."""
        annotation = self.annotate(tokens, coverage=coverage)
        return {
            f: np.asarray(self.label_names_[f], dtype=object)[annotation.ranking(f).argmax(axis=1)]
            for f in self.fields_
        }

    def reference_annotation(self) -> Annotation:
        """Every reference set annotated from the others (leave-one-out): what l2r ranks sets by. Computed once."""
        self._check_fitted()
        if self._reference_annotation is None:
            self._reference_annotation = self.annotate(self._tokens, own=np.arange(self.n_sets_))
        return self._reference_annotation

    def shared_labels(self, annotation: Annotation) -> np.ndarray:
        """Queries × reference sets: the probability that each query carries each set's labels (mean over fields).

        From the calibrated probabilities of an :meth:`annotate` answer. A reference set without a label in a
        field is taken to carry one drawn from the base rates (probability ``P · priors``), so an unlabelled set
        is neither favoured nor penalised; a query out of the domain (no probabilities) is taken to carry labels
        drawn from the base rates too. This is what the default r2r adds to the embedding's cosine
        (:data:`LABEL_WEIGHT`): sets of the query's cell type, tissue and assay first, in the embedding's order.
        """
        fields = [f for f in self.fields_ if f in annotation.probabilities]
        if not fields:
            raise ValueError("no label probabilities to compare the queries with the reference sets by")
        total = None
        for name in fields:
            probabilities, codes = annotation.probabilities[name], self.codes_[name]
            probabilities = np.where(np.isnan(probabilities), np.asarray(self.priors_[name])[None, :], probabilities)
            unknown = probabilities @ np.asarray(self.priors_[name], dtype=np.float64)
            shared = np.where(codes[None, :] >= 0, probabilities[:, np.maximum(codes, 0)], unknown[:, None])
            total = shared if total is None else total + shared
        return total / len(fields)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError("this RegionAnnotator is not fitted yet: call fit(tokens, codes, label_names) first")

    # -- the saved form ---------------------------------------------------------------------------------------
    def to_record(self) -> dict:
        """Everything fitted, as nested plain values and arrays (``AnnData.uns``; :func:`flatten` for ``.npz``)."""
        self._check_fitted()
        by_field = {}
        for name in self.fields_:
            fitted = self.classifier_.fields[name]
            entry = {key: np.asarray(getattr(fitted, key)) for key in _FIELD_ARRAYS}
            entry.update({key: float(getattr(fitted, key)) for key in _FIELD_NUMBERS})
            entry.update(labels=list(self.label_names_[name]), set_codes=self.codes_[name], priors=self.priors_[name])
            by_field[name] = entry
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": {"max_sets": self.max_sets, "max_queries": self.max_queries, "n_folds": self.n_folds or 0,
                       "calibrate": self.calibrate, "evidence": self.evidence, "random_state": self.random_state},
            "n_sets": int(self.n_sets_),
            "n_regions": int(self.n_regions_),
            "fields": list(self.fields_),
            "fingerprint": self.fingerprint_,
            "by_field": by_field,
            "calibrators": {f: c.to_dict() for f, c in self.calibrators_.items()},
            "min_log_odds": float(self.min_log_odds_),
            "min_coverage": float(self.min_coverage_),
            "diagnostics": {f: {k: float(v) for k, v in d.items()} for f, d in self.diagnostics_.items()},
            "reliability": {f: {k: np.asarray(v, dtype=np.float64) for k, v in b.items()} for f, b in self.reliability_.items()},
            **({} if self.evidence_ is None else {"evidence": self.evidence_.to_record()}),
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: Mapping, tokens, *, check: bool = True) -> RegionAnnotator:
        """The annotator :meth:`to_record` wrote, bound to the tokens it was fitted on.

        ``check``: read the compared sets' tokens now and compare them with the fingerprints the record holds.
        ``False`` leaves them unread until the first query: for tokens that are known to be those it was saved
        with (a model folder's, whose files are checked against their checksums).

        Raises
        ------
        ValueError
            The record is not an annotator of this format, is damaged, or ``tokens`` are not the sets it was
            fitted on (another number of sets or regions, or a compared set whose regions changed).
        """
        tokens = TokenMatrix.of(tokens)
        if str(_scalar(record.get("format"))) != FORMAT or _int(record.get("format_version")) != FORMAT_VERSION:
            raise ValueError(
                f"not a bedspace annotator of format {FORMAT_VERSION} (format {_scalar(record.get('format'))!r}, "
                f"version {_scalar(record.get('format_version'))!r}): made by another bedspace version; fit it again"
            )
        try:
            params = {k: _scalar(v) for k, v in dict(record["params"]).items()}
            annotator = cls(
                max_sets=int(params["max_sets"]), max_queries=int(params["max_queries"]),
                n_folds=int(params["n_folds"]) or None, calibrate=bool(params["calibrate"]),
                evidence=bool(params.get("evidence", True)), random_state=int(params["random_state"]),
            )  # fmt: skip
            fields = [str(f) for f in np.atleast_1d(record["fields"])]
            n_sets, n_regions = int(_scalar(record["n_sets"])), int(_scalar(record["n_regions"]))
            names, codes, priors, classifiers = {}, {}, {}, {}
            for name in fields:
                entry = dict(record["by_field"][name])
                names[name] = [str(v) for v in np.atleast_1d(entry["labels"])]
                n_labels = len(names[name])
                codes[name] = np.asarray(entry["set_codes"], dtype=np.int64).reshape(-1)
                priors[name] = np.asarray(entry["priors"], dtype=np.float64).reshape(n_labels)
                arrays = {key: np.asarray(entry[key]) for key in _FIELD_ARRAYS}
                classifiers[name] = FieldClassifier(
                    rows=arrays["rows"].astype(np.int64).reshape(-1),
                    codes=arrays["codes"].astype(np.int64).reshape(-1),
                    kernel_mean=arrays["kernel_mean"].astype(np.float64).reshape(-1),
                    coefficients=arrays["coefficients"].astype(np.float64).reshape(-1, n_labels),
                    intercept=arrays["intercept"].astype(np.float64).reshape(n_labels),
                    present=arrays["present"].astype(bool).reshape(n_labels),
                    leave_one_out=arrays["leave_one_out"].astype(np.float64).reshape(-1, n_labels),
                    **{key: float(_scalar(entry[key])) for key in _FIELD_NUMBERS},
                )
                if codes[name].size != n_sets or classifiers[name].rows.size != classifiers[name].coefficients.shape[0]:
                    raise ValueError(f"field {name!r}: arrays of mismatched sizes")
            calibrators = {
                str(f): Calibrator.from_dict(dict(c)) for f, c in dict(record.get("calibrators", {})).items()
            }
            fingerprint = np.asarray(record["fingerprint"], dtype=np.int64).reshape(-1, 2)
            min_log_odds, min_coverage = float(_scalar(record["min_log_odds"])), float(_scalar(record["min_coverage"]))
            diagnostics = {str(f): {str(k): float(_scalar(v)) for k, v in dict(d).items()} for f, d in dict(record.get("diagnostics", {})).items()}  # fmt: skip
            reliability = {
                str(f): {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in dict(b).items()}
                for f, b in dict(record.get("reliability", {})).items()
            }
            evidence = Evidence.from_record(dict(record["evidence"]), _scalar) if "evidence" in record else None
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"the annotator record is damaged ({type(err).__name__}: {err})") from None
        if (tokens.n_sets, tokens.n_regions) != (n_sets, n_regions):
            raise ValueError(
                f"the annotator was fitted on {n_sets:,} sets × {n_regions:,} regions, these tokens are "
                f"{tokens.n_sets:,} × {tokens.n_regions:,}: not the sets it was fitted on"
            )
        classifier = KernelClassifier(classifiers, {f: len(names[f]) for f in fields})
        compared = None
        if check:
            compared = tokens.read(classifier.compared_rows)
            if not np.array_equal(compared.fingerprint(), fingerprint):
                raise ValueError("the sets' tokens are not those the annotator was fitted on (their regions changed)")
        annotator._set_fitted(tokens, compared, fields, names, codes, classifier, fingerprint)
        annotator.priors_ = priors
        annotator.calibrators_ = calibrators
        annotator.min_log_odds_, annotator.min_coverage_ = min_log_odds, min_coverage
        annotator.diagnostics_, annotator.reliability_ = diagnostics, reliability
        annotator.evidence_ = evidence
        return annotator


def _parts(queries: TokenRows | TokenMatrix) -> Iterator[tuple[slice, TokenRows]]:
    """Queries as ``(rows, TokenRows)``: all at once in memory, a chunk at a time from an ``.h5ad`` file.

    (l2r of a backed collection annotates every set: the file is read once, a chunk of rows at a time.)
    """
    if isinstance(queries, TokenRows):
        yield slice(0, len(queries)), queries
    elif not queries.in_file:
        yield slice(0, queries.n_sets), queries.read()
    else:
        for start, stop in queries.chunks():
            yield slice(start, stop), queries.read(np.arange(start, stop))


def _score_blocks(classifier: KernelClassifier, compared: TokenRows, queries: TokenRows, own, own_compared=None):
    """Per field the scores, and the best log odds, of ``queries`` against the ``compared`` sets, a block at a time."""
    n = len(queries)
    scores = {name: np.zeros((n, n_labels)) for name, n_labels in classifier.n_labels.items()}
    best = np.zeros(n)
    for rows in blocks(n, BLOCK):
        block = queries.subset(np.arange(n)[rows])
        block_own = None if own is None else np.asarray(own)[rows]
        block_own_compared = None if own_compared is None else own_compared[rows]
        shared = overlap_counts(block, compared)
        result = comparison(shared, block.sizes, compared.sizes, compared.n_regions, block_own_compared)
        best[rows] = result.best_log_odds
        for name in scores:
            scores[name][rows] = classifier.scores(name, result, block_own)
    return scores, best


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


def _half_low_percentile(values, *, default: float) -> float:
    """Half the 1st percentile of the finite values (``default`` when there are none)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return 0.5 * float(np.quantile(finite, 0.01)) if finite.size else default


def _scalar(value):
    """A 0-d array or one-element list (as ``.h5ad`` and ``.npz`` return scalars) as the plain value."""
    value = np.asarray(value) if isinstance(value, np.ndarray | np.generic) else value
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _int(value) -> int:
    try:
        return int(_scalar(value))
    except (TypeError, ValueError):
        return -1


#: Arrays of more elements than this are stored as arrays of their own by :func:`flatten`; the rest as JSON.
_INLINE = 64
_JSON = "record.json"


def flatten(record: Mapping) -> dict[str, np.ndarray]:
    """A nested record as named arrays for ``numpy.savez`` (no pickle): its large arrays by path, the rest as JSON.

    A path joins the keys with ``/`` (a ``/`` or ``%`` inside a key is escaped); everything small (numbers,
    strings, short arrays) goes into one JSON document, ``record.json``, with each large array's place marked.
    """
    arrays: dict[str, np.ndarray] = {}

    def visit(value, path: str):
        if isinstance(value, Mapping):
            return {
                str(k): visit(v, f"{path}{str(k).replace('%', '%25').replace('/', '%2F')}/") for k, v in value.items()
            }
        if isinstance(value, np.ndarray) and value.size > _INLINE and value.dtype.kind in "biuf":
            arrays[path.rstrip("/")] = value
            return {"__array__": path.rstrip("/")}
        return plain(value)

    document = visit(record, "")
    return {_JSON: np.array(json.dumps(document)), **arrays}


def unflatten(arrays: Mapping[str, np.ndarray]) -> dict:
    """The record :func:`flatten` flattened."""

    def visit(value):
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return np.asarray(arrays[value["__array__"]])
            return {k: visit(v) for k, v in value.items()}
        return value

    return visit(json.loads(str(arrays[_JSON][()])))
