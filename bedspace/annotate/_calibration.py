"""Calibration of label predictions: how far to trust an annotation's confidence, and a map that makes it right.

A region set's scores for the labels of one field (cosine similarities to the field's label vectors) rank the
labels but are not probabilities. :func:`fit_calibrator` turns them into probabilities with a temperature-scaled
softmax, the temperature chosen to minimise the log loss on held-out sets with known labels, optionally followed
by isotonic regression of the top label's confidence when that lowers the calibration error out of sample.
:func:`expected_calibration_error` and :func:`reliability_bins` measure how well stated confidence matches
accuracy. A fitted :class:`Calibrator` is plain numbers: :meth:`Calibrator.to_dict` is JSON-able (for a model
folder or ``AnnData.uns``) and :meth:`Calibrator.from_dict` reads it back.

All functions are pure (arrays in, arrays out): rows are region sets, columns the field's labels, and ``truth``
holds the column of each set's true label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

FORMAT = "bedspace-calibrator"
FORMAT_VERSION = 2  # 2: the support step (format 1 records read as calibrators without it)
#: Bins of an answer's support (how many fitted sets carry its label): 1, 2–3, 4–9, 10 or more. Each bin gets its
#: own shift of the top label's log odds (:func:`fit_calibrator`): an answer resting on one or a few sets is right
#: less often than one resting on dozens at the same score, and one map for every label cannot see that.
SUPPORT_EDGES = (1, 2, 4, 10)
#: Ridge penalty on each bin's shift (in squared log odds): a bin of a few answers moves little from no shift.
SUPPORT_RIDGE = 1.0
# Temperatures searched (log-uniformly). Cosine similarities lie in [-1, 1] and a field's labels often differ by
# a few hundredths, so useful temperatures are small; the upper end allows "no information" (near-uniform).
TEMPERATURE_BOUNDS = (1e-4, 1e3)
# Probabilities are clipped away from 0 in the log loss, as scikit-learn does, so one sure miss is not infinite.
_EPS = 1e-15


def _scores_and_truth(scores, truth=None) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be a 2-D sets × labels array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain nan or inf")
    if truth is None:
        return scores, None
    truth = np.asarray(truth)
    if truth.shape != (scores.shape[0],):
        raise ValueError(f"truth has shape {truth.shape}; expected one label column per set ({scores.shape[0]},)")
    if not np.issubdtype(truth.dtype, np.integer):
        raise TypeError(f"truth must hold integer label columns, got dtype {truth.dtype}")
    if truth.size and (truth.min() < 0 or truth.max() >= scores.shape[1]):
        raise ValueError(f"truth holds columns outside 0 … {scores.shape[1] - 1}")
    return scores, truth


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Log of the softmax of each row, as :func:`scipy.special.log_softmax` computes it (the same numbers)."""
    scores = np.asarray(scores)
    peak = np.max(scores, axis=1, keepdims=True)
    peak[~np.isfinite(peak)] = 0
    shifted = scores - peak
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def softmax(scores, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature``."""
    scores, _ = _scores_and_truth(scores)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return np.exp(log_softmax(scores / temperature))


def log_loss(probabilities, truth) -> float:
    """Mean negative log probability of the true label (probabilities clipped at 1e-15)."""
    probabilities, truth = _scores_and_truth(probabilities, truth)
    if truth.size == 0:
        raise ValueError("no sets to measure")
    p = probabilities[np.arange(truth.size), truth]
    return float(-np.mean(np.log(np.clip(p, _EPS, 1.0))))


def reliability_bins(probabilities, truth, *, n_bins: int = 15) -> pd.DataFrame:
    """Reliability diagram: top-label confidence against accuracy, in equal-width confidence bins.

    Parameters
    ----------
    probabilities
        Sets × labels, rows summing to 1 (e.g. :meth:`Calibrator.predict_proba`).
    truth
        Column of each set's true label.
    n_bins
        Equal-width bins on [0, 1]; bin ``b`` holds confidences in ``[b / n_bins, (b + 1) / n_bins)``, the last
        one also 1.

    Returns
    -------
    One row per bin: ``lower``, ``upper`` (bin edges), ``confidence`` (mean top-label probability), ``accuracy``
    (share whose top label is right) and ``count``; ``confidence`` and ``accuracy`` are ``nan`` in empty bins.
    A calibrated predictor has ``accuracy ≈ confidence`` in every bin.
    """
    probabilities, truth = _scores_and_truth(probabilities, truth)
    return confidence_bins(probabilities.max(axis=1), probabilities.argmax(axis=1) == truth, n_bins=n_bins)


def confidence_bins(confidence, correct, *, n_bins: int = 15) -> pd.DataFrame:
    """:func:`reliability_bins` from each answer's stated confidence and whether it was right (pooled answers)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    n_bins = int(n_bins)
    which = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "confidence": mean_confidence, "accuracy": accuracy, "count": count}
    )


def expected_calibration_error(probabilities, truth, *, n_bins: int = 15) -> float:
    """Expected calibration error of the top label: ``Σ_b (n_b / n) |accuracy_b - confidence_b|``.

    Equal-width bins of top-label confidence (see :func:`reliability_bins`). 0 means the stated confidence is
    the observed accuracy; an overconfident predictor (says 0.95, right half the time) scores high. With few
    sets, even a calibrated predictor scores above 0: the bins' accuracies are noisy.
    """
    return _error(reliability_bins(probabilities, truth, n_bins=n_bins))


def confidence_calibration_error(confidence, correct, *, n_bins: int = 15) -> float:
    """:func:`expected_calibration_error` from each answer's stated confidence and whether it was right."""
    return _error(confidence_bins(confidence, correct, n_bins=n_bins))


def _error(bins: pd.DataFrame) -> float:
    filled = bins["count"] > 0
    if not filled.any():
        raise ValueError("no sets to measure")
    gap = (bins["accuracy"] - bins["confidence"]).abs()[filled]
    return float(np.sum(gap * bins["count"][filled]) / bins["count"].sum())


def fit_temperature(scores, truth, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` minimising the log loss of ``softmax(scores / T)`` against ``truth``.

    The log loss is convex in ``1 / T``, so a bounded scalar search (on ``log T``) finds the optimum. When the
    labels are perfectly separated by the scores, the loss keeps falling as ``T → 0`` and the lower bound is
    returned: such a fit comes from too few or training-set examples and will be overconfident on new sets.
    """
    scores, truth = _scores_and_truth(scores, truth)
    if truth.size == 0:
        raise ValueError("no sets to fit the temperature on")
    low, high = (float(b) for b in bounds)
    if not 0 < low < high:
        raise ValueError(f"bounds must be 0 < low < high, got {bounds}")
    rows = np.arange(truth.size)

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(scores / np.exp(log_t))[rows, truth]))

    from scipy.optimize import minimize_scalar  # imported when fitting: annotating needs none of scipy's

    result = minimize_scalar(loss, bounds=(np.log(low), np.log(high)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def _isotonic_knots(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing map of confidence to accuracy (pool-adjacent-violators), as knots for ``np.interp``.

    Each pooled block becomes a flat segment from its smallest to its largest confidence; between blocks the
    map is linear, outside them constant. Values are kept within ``[1 / (n + 2), 1 - 1 / (n + 2)]``: a block
    that was always right (or always wrong) on ``n`` fitting sets does not make a new set certain.
    """
    order = np.argsort(confidence, kind="stable")
    x = confidence[order]
    from scipy.optimize import isotonic_regression

    fit = isotonic_regression(correct[order].astype(np.float64), increasing=True).x
    # A block of ties in x must get one value: average the fit over equal x before keeping block ends.
    unique_x, start = np.unique(x, return_index=True)
    y = np.add.reduceat(fit, start) / np.diff(np.append(start, x.size))
    y = np.maximum.accumulate(y)  # averaging can round a flat run down by an ulp: keep the map non-decreasing
    keep = np.ones(unique_x.size, bool)
    # Drop knots strictly inside a flat run: np.interp gives the same values with fewer numbers to store.
    keep[1:-1] = ~((y[1:-1] == y[:-2]) & (y[1:-1] == y[2:]))
    margin = 1.0 / (confidence.size + 2)
    return unique_x[keep], np.clip(y[keep], margin, 1.0 - margin)


@dataclass(frozen=True)
class Calibrator:
    """Maps one field's label scores to calibrated probabilities (see :func:`fit_calibrator`).

    ``probabilities = softmax(scores / temperature)``; with isotonic knots, the top label's probability is then
    replaced by ``np.interp(top, isotonic_x, isotonic_y)``; with the support step, its log odds are then shifted
    by ``support_shifts[b]``, ``b`` the bin (:data:`SUPPORT_EDGES`) of the top label's ``support``. Each time the
    other labels share the rest in proportion, never enough to overtake the top label (the calibrated prediction
    is the raw one).

    Attributes
    ----------
    temperature
        Softmax temperature.
    isotonic_x, isotonic_y
        Knots of the isotonic map of top-label confidence (empty: none).
    support, support_shifts
        Per label, the fitted sets carrying it; per support bin, the shift of the top label's log odds (both
        empty: no support step).
    labels
        The labels (column order of the scores) the calibrator was fitted for; empty if not given.
    field
        The label field, if given.
    n_fitted
        Sets it was fitted on.
    diagnostics
        Numbers of the fit (log loss and ECE before and after; out-of-fold ECE and log loss with and without the
        isotonic step).
    """

    temperature: float
    isotonic_x: tuple[float, ...] = ()
    isotonic_y: tuple[float, ...] = ()
    support: tuple[int, ...] = ()
    support_shifts: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    field: str = ""
    n_fitted: int = 0
    diagnostics: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")
        if len(self.isotonic_x) != len(self.isotonic_y):
            raise ValueError("isotonic_x and isotonic_y differ in length")
        if np.any(np.diff(self.isotonic_x) < 0) or np.any(np.diff(self.isotonic_y) < 0):
            raise ValueError("isotonic knots must be non-decreasing in x and y")
        if self.support_shifts and len(self.support_shifts) != len(SUPPORT_EDGES):
            raise ValueError(f"support_shifts has {len(self.support_shifts)} bins, not {len(SUPPORT_EDGES)}")
        if bool(self.support) != bool(self.support_shifts):
            raise ValueError("support and support_shifts come together (both empty: no support step)")

    @property
    def isotonic(self) -> bool:
        """Whether an isotonic step follows the temperature."""
        return len(self.isotonic_x) > 0

    def predict_proba(self, scores, *, top_support: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities, sets × labels (rows sum to 1).

        ``top_support``: per set, the support of its top label as that set sees it (a fitted set annotated from
        the others has one set fewer of its own label); by default the fitted support (:attr:`support`).
        """
        scores, _ = _scores_and_truth(scores)
        if self.labels and scores.shape[1] != len(self.labels):
            raise ValueError(
                f"scores have {scores.shape[1]} label columns; this calibrator was fitted for {len(self.labels)} "
                f"labels of field {self.field!r}"
            )
        probabilities = softmax(scores, self.temperature)
        if self.isotonic:
            probabilities = _recalibrate_top(probabilities, np.asarray(self.isotonic_x), np.asarray(self.isotonic_y))
        if self.support_shifts:
            if top_support is None:
                top_support = np.asarray(self.support)[probabilities.argmax(axis=1)]
            shift = np.asarray(self.support_shifts)[support_bins(top_support)]
            probabilities = _replace_top(probabilities, _shifted(probabilities.max(axis=1), shift))
        return probabilities

    def confidence(self, scores) -> np.ndarray:
        """Calibrated probability of each set's top-scoring label."""
        return self.predict_proba(scores).max(axis=1)

    def to_dict(self) -> dict:
        """Plain JSON-able description (numbers, strings, lists): for ``model.json`` or ``AnnData.uns``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": "+".join(
                ["temperature"] + ["isotonic"] * self.isotonic + ["support"] * bool(self.support_shifts)
            ),
            "temperature": float(self.temperature),
            "isotonic_x": [float(v) for v in self.isotonic_x],
            "isotonic_y": [float(v) for v in self.isotonic_y],
            "support": [int(v) for v in self.support],
            "support_shifts": [float(v) for v in self.support_shifts],
            "labels": [str(v) for v in self.labels],
            "field": str(self.field),
            "n_fitted": int(self.n_fitted),
            "diagnostics": {str(k): float(v) for k, v in self.diagnostics.items()},
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> Calibrator:
        """Read :meth:`to_dict`'s output back (also after a round trip through JSON or an ``.h5ad``)."""
        if not isinstance(record, Mapping):
            raise TypeError(f"a calibrator record must be a mapping, got {type(record).__name__}")
        if str(record.get("format", "")) != FORMAT:
            raise ValueError(f"not a bedspace calibrator record (format {record.get('format')!r})")
        version = int(np.asarray(record.get("format_version", 0)))
        if not 1 <= version <= FORMAT_VERSION:
            raise ValueError(
                f"calibrator format {version}: this bedspace reads formats 1 … {FORMAT_VERSION}; upgrade bedspace"
            )
        if "temperature" not in record:
            raise ValueError("calibrator record has no 'temperature'")

        def numbers(key):
            return tuple(float(v) for v in np.asarray(record.get(key, []), dtype=np.float64).ravel())

        return cls(
            temperature=float(np.asarray(record["temperature"])),
            isotonic_x=numbers("isotonic_x"),
            isotonic_y=numbers("isotonic_y"),
            support=tuple(int(v) for v in numbers("support")),
            support_shifts=numbers("support_shifts"),
            labels=tuple(str(v) for v in np.asarray(record.get("labels", []), dtype=object).ravel()),
            field=str(record.get("field", "")),
            n_fitted=int(np.asarray(record.get("n_fitted", 0))),
            diagnostics={str(k): float(np.asarray(v)) for k, v in dict(record.get("diagnostics", {})).items()},
        )


def _recalibrate_top(probabilities: np.ndarray, knots_x: np.ndarray, knots_y: np.ndarray) -> np.ndarray:
    """Replace the top label's probability by the isotonic map; the others share the rest in proportion."""
    return _replace_top(probabilities, np.interp(probabilities.max(axis=1), knots_x, knots_y))


def support_bins(support) -> np.ndarray:
    """The bin (:data:`SUPPORT_EDGES`) of each support: 0 for 1 set (or none), … 3 for 10 sets or more."""
    return np.maximum(np.searchsorted(SUPPORT_EDGES, np.asarray(support), side="right") - 1, 0)


def _logit(p: np.ndarray) -> np.ndarray:
    """The log odds of probabilities (clipped away from 0 and 1)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _shifted(p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``p`` with its log odds moved by ``shift``."""
    return 1.0 / (1.0 + np.exp(-(_logit(p) + shift)))


def _support_shifts(confidence: np.ndarray, correct: np.ndarray, top_support: np.ndarray) -> tuple[float, ...]:
    """Per support bin, the shift of the top label's log odds that minimises the answers' log loss (+ ridge)."""
    from scipy.optimize import minimize_scalar

    bins = support_bins(top_support)
    shifts = []
    for b in range(len(SUPPORT_EDGES)):
        mine = bins == b
        odds, right = _logit(confidence[mine]), correct[mine].astype(np.float64)

        def loss(shift: float, odds=odds, right=right) -> float:
            # the Bernoulli log loss of the shifted answers, written with logaddexp to stay finite
            z = odds + shift
            return float(np.sum(np.logaddexp(0.0, -z) * right + np.logaddexp(0.0, z) * (1 - right))) + (
                SUPPORT_RIDGE * shift**2
            )

        shifts.append(float(minimize_scalar(loss, bounds=(-10.0, 10.0), method="bounded").x) if mine.any() else 0.0)
    return tuple(shifts)


def _replace_top(probabilities: np.ndarray, new_top: np.ndarray) -> np.ndarray:
    """The top label's probability replaced by ``new_top``; the others share the rest in proportion."""
    rows = np.arange(probabilities.shape[0])
    top = probabilities.argmax(axis=1)
    p_top = probabilities[rows, top]
    rest = 1.0 - p_top
    if probabilities.shape[1] > 1:
        second = np.partition(probabilities, -2, axis=1)[:, -2]
        # The top label keeps the lead: p' >= second · (1 - p') / rest, i.e. p' >= second / (rest + second);
        # a hair above it, so that a tie cannot hand the argmax to another label.
        floor = np.divide(second, rest + second, out=np.ones_like(second), where=rest + second > 0) * (1 + 1e-9)
    else:
        floor = np.ones_like(p_top)
    new_top = np.clip(new_top, floor, 1.0)
    scale = np.divide(1.0 - new_top, rest, out=np.zeros_like(rest), where=rest > 0)
    out = probabilities * scale[:, None]
    out[rows, top] = new_top
    return out


def fit_calibrator(
    scores,
    truth,
    *,
    isotonic: bool | str = "auto",
    labels: Sequence[str] = (),
    field: str = "",
    support: Sequence[int] | None = None,
    top_support: np.ndarray | None = None,
    n_bins: int = 15,
    n_folds: int = 5,
    random_state: int = 0,
) -> Calibrator:
    """Fit a map from one field's label scores to probabilities, on held-out sets with known labels.

    A temperature-scaled softmax, the temperature minimising the log loss (:func:`fit_temperature`); then,
    optionally, isotonic regression of the top label's confidence on its correctness.

    Fit on sets the embedding was not trained on: training sets sit closer to their labels than new sets will,
    and a temperature fitted on them is overconfident.

    Parameters
    ----------
    scores
        Sets × the field's labels: each set's score for each label (cosine similarity in bedspace).
    truth
        Column of each set's true label.
    isotonic
        ``"auto"``: add the isotonic step only if, in ``n_folds``-fold cross-validation, it lowers the expected
        calibration error out of sample without raising the log loss. Isotonic regression always looks better
        on the sets it was fitted on, and binned ECE alone favours it even where a temperature is all the data
        need; the log loss (a proper score) vetoes those cases. ``True``: always; ``False``: never.
    labels, field
        What the columns are, kept in the calibrator to check later scores against.
    support, top_support
        Per label, the fitted sets carrying it; per set, the support of its top-scoring label as the set saw it
        (a fitted set annotated leave-one-out has one fewer of its own label; default: ``support``). Given
        ``support``, a last step shifts the top label's log odds per support bin (:data:`SUPPORT_EDGES`), each
        shift fitted by log loss with a ridge penalty (:data:`SUPPORT_RIDGE`): how often an answer is right
        depends on how many sets its label rests on, not only on its score.
    n_bins
        Bins of the expected calibration error.
    n_folds, random_state
        Cross-validation folds and their seed, for ``isotonic="auto"``.

    Returns
    -------
    The fitted :class:`Calibrator`. Its ``diagnostics`` hold the log loss and ECE (on the fitting sets) of the
    raw softmax (temperature 1) and of the calibrated probabilities and, with ``isotonic="auto"``, the
    out-of-fold ECE and log loss with and without the isotonic step.
    """
    scores, truth = _scores_and_truth(scores, truth)
    if isotonic not in (True, False, "auto"):
        raise ValueError(f"isotonic must be True, False or 'auto', got {isotonic!r}")
    if labels and len(labels) != scores.shape[1]:
        raise ValueError(f"{len(labels)} labels for {scores.shape[1]} score columns")
    if truth.size < 2:
        raise ValueError(f"need at least 2 sets with known labels to fit a calibrator, got {truth.size}")
    diagnostics = {
        "log_loss_raw": log_loss(softmax(scores), truth),
        "ece_raw": expected_calibration_error(softmax(scores), truth, n_bins=n_bins),
    }
    temperature = fit_temperature(scores, truth)
    scaled = softmax(scores, temperature)
    use_isotonic = bool(isotonic)
    if isotonic == "auto":
        cv = _cross_validated(scores, truth, n_bins=n_bins, n_folds=n_folds, seed=random_state)
        diagnostics |= cv
        use_isotonic = (
            cv["ece_cv_isotonic"] < cv["ece_cv_temperature"]
            and cv["log_loss_cv_isotonic"] <= cv["log_loss_cv_temperature"]
        )
    knots = ((), ())
    correct = scaled.argmax(axis=1) == truth
    if use_isotonic:
        knots = _isotonic_knots(scaled.max(axis=1), correct.astype(np.float64))
    calibrator = Calibrator(
        temperature=temperature,
        isotonic_x=tuple(float(v) for v in knots[0]),
        isotonic_y=tuple(float(v) for v in knots[1]),
        labels=tuple(str(v) for v in labels),
        field=str(field),
        n_fitted=int(truth.size),
    )
    if support is not None:
        support = tuple(int(v) for v in support)
        if len(support) != scores.shape[1]:
            raise ValueError(f"support of {len(support)} labels for {scores.shape[1]} score columns")
        if top_support is None:
            top_support = np.asarray(support)[scaled.argmax(axis=1)]
        top_support = np.asarray(top_support)
        if top_support.shape != truth.shape:
            raise ValueError(f"top_support has shape {top_support.shape}; expected one per set {truth.shape}")
        shifts = _support_shifts(calibrator.predict_proba(scores).max(axis=1), correct, top_support)
        calibrator = dataclasses.replace(calibrator, support=support, support_shifts=shifts)
    calibrated = calibrator.predict_proba(scores, top_support=top_support)
    diagnostics |= {
        "log_loss": log_loss(calibrated, truth),
        "ece": expected_calibration_error(calibrated, truth, n_bins=n_bins),
    }
    return Calibrator(**{**vars(calibrator), "diagnostics": diagnostics})


def _cross_validated(
    scores: np.ndarray, truth: np.ndarray, *, n_bins: int, n_folds: int, seed: int
) -> dict[str, float]:
    """Out-of-fold ECE and log loss of temperature alone and of temperature + isotonic, over ``n_folds`` folds."""
    n_folds = min(int(n_folds), truth.size)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    fold = np.random.default_rng(seed).permutation(truth.size) % n_folds
    plain = np.empty_like(scores)
    isotonic = np.empty_like(scores)
    for k in range(n_folds):
        fit, held = fold != k, fold == k
        temperature = fit_temperature(scores[fit], truth[fit])
        scaled = softmax(scores[fit], temperature)
        knots = _isotonic_knots(scaled.max(axis=1), (scaled.argmax(axis=1) == truth[fit]).astype(np.float64))
        plain[held] = softmax(scores[held], temperature)
        isotonic[held] = _recalibrate_top(plain[held], *knots)
    return {
        "ece_cv_temperature": expected_calibration_error(plain, truth, n_bins=n_bins),
        "ece_cv_isotonic": expected_calibration_error(isotonic, truth, n_bins=n_bins),
        "log_loss_cv_temperature": log_loss(plain, truth),
        "log_loss_cv_isotonic": log_loss(isotonic, truth),
    }
