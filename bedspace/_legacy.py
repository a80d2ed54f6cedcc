"""Annotators bedspace kept before the annotator was one estimator: model format 2 and ``.h5ad`` files of then.

Then the default annotator's state had two parts: the calibration and domain (an ``Annotator`` record, format
2: in ``model.json`` or ``uns[key]["annotator"]``) and, when calibration had fitted it on every set, the kernel
ridge classifier (``classifier.npz`` or ``uns[key]["classifier"]``; otherwise fitted at the first query).
:func:`legacy_record` turns them into the one record of :class:`~bedspace.annotate.RegionAnnotator`, so that
such a folder or file answers exactly as it did, without fitting again what it kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._labels import LabelTable
from ._logging import info
from ._reference import ReferenceSets
from .annotate import RegionAnnotator
from .annotate._estimator import _FIELD_ARRAYS, _FIELD_NUMBERS, FORMAT, FORMAT_VERSION, MIN_COVERAGE
from .annotate._ridge import fitted_sample


def is_legacy(record) -> bool:
    """Whether ``record`` is an annotator record of format 2."""
    try:
        return str(np.asarray(record.get("format"))) == FORMAT and int(np.asarray(record["format_version"])) == 2
    except (AttributeError, KeyError, TypeError, ValueError):
        return False


def classifier_of_arrays(arrays: Mapping[str, np.ndarray]) -> dict:
    """A format-2 ``classifier.npz`` (flat ``field<i>/<name>`` arrays) as the record ``.uns`` kept."""
    fields = [str(f) for f in np.atleast_1d(arrays["fields"])]
    record = {key: arrays[key][()] for key in ("n_sets", "max_sets", "random_state") if key in arrays}
    by_field: dict[str, dict] = {name: {} for name in fields}
    for key, value in arrays.items():
        if key.startswith("field") and "/" in key:
            index, attribute = key[len("field") :].split("/", 1)
            by_field[fields[int(index)]][attribute] = value[()] if value.ndim == 0 else value
    return {**record, "fields": fields, "by_field": by_field}


def legacy_record(
    reference: ReferenceSets, labels: LabelTable, annotator: Mapping | None, classifier: Mapping | None, seed: int
) -> dict | None:
    """The :class:`~bedspace.annotate.RegionAnnotator` record of a format-2 annotator and classifier.

    ``None`` when the sets carry no tokens or labels (there was no annotator to keep). The classifier is taken
    as kept when it is the one format 2 would have used (the same sets drawn, their labels and regions as then);
    otherwise it is fitted, as format 2 did at its first query. The calibration and domain come from
    ``annotator`` when there is one.
    """
    codes = reference.label_codes(labels)
    if reference.tokens is None or not codes:
        return None
    names = {f: labels.names[labels.in_field(f)].tolist() for f in codes}
    record = _kept(classifier, reference, codes, names)
    if record is None:
        info("fitting the classifier of an annotator of format 2 (it kept none that fits these sets)")
        options = {} if classifier is None else {"max_sets": int(np.asarray(classifier["max_sets"]))}
        fitted = RegionAnnotator(random_state=seed, calibrate=False, **options).fit(reference.tokens, codes, names)
        record = fitted.to_record()
    if annotator is not None:
        record["params"]["calibrate"] = True
        record["calibrators"] = dict(annotator["calibrators"])
        for name in codes:
            record["by_field"][name]["priors"] = np.asarray(annotator["priors"][name], dtype=np.float64)
        record.update(
            min_log_odds=float(np.asarray(annotator["min_log_odds"])),
            min_coverage=float(np.asarray(annotator.get("min_coverage", MIN_COVERAGE))),
            diagnostics=dict(annotator.get("diagnostics", {})), reliability=dict(annotator.get("reliability", {})),
        )  # fmt: skip
    return record


def _kept(classifier, reference: ReferenceSets, codes: dict, names: dict) -> dict | None:
    """The record of the kept classifier, if it is the one format 2 would have used; else ``None``."""
    tokens = reference.tokens
    try:
        fields = [str(f) for f in np.atleast_1d(classifier["fields"])]
        max_sets, seed = int(np.asarray(classifier["max_sets"])), int(np.asarray(classifier["random_state"]))
        if fields != list(codes) or int(np.asarray(classifier.get("n_sets", tokens.n_sets))) != tokens.n_sets:
            return None
        _, chosen = fitted_sample(codes, tokens.n_sets, max_sets, seed)
        by_field = {}
        for name in fields:
            entry = dict(classifier["by_field"][name])
            rows = np.asarray(entry["rows"], dtype=np.int64)
            same = (
                np.array_equal(rows, chosen[name])
                and np.array_equal(np.asarray(entry["codes"]), codes[name][rows])
                and np.array_equal(np.asarray(entry["tokens"]).reshape(-1, 2), tokens.read(rows).fingerprint())
            )
            if not same:
                return None
            counts = np.bincount(codes[name][codes[name] >= 0], minlength=len(names[name]))
            by_field[name] = {
                **{key: np.asarray(entry[key]) for key in _FIELD_ARRAYS},
                **{key: float(np.asarray(entry[key])) for key in _FIELD_NUMBERS},
                "labels": names[name], "set_codes": codes[name], "priors": counts / max(counts.sum(), 1),
            }  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    compared = np.unique(np.concatenate([np.zeros(0, np.int64)] + [f["rows"] for f in by_field.values()]))
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": {"max_sets": max_sets, "max_queries": 2000, "n_folds": 0, "calibrate": False, "random_state": seed},
        "n_sets": tokens.n_sets,
        "n_regions": tokens.n_regions,
        "fields": fields,
        "fingerprint": tokens.read(compared).fingerprint(),
        "by_field": by_field,
        "calibrators": {},
        "min_log_odds": -np.inf,
        "min_coverage": MIN_COVERAGE,
        "diagnostics": {},
        "reliability": {},
    }
