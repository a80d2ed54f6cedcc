"""A trained AnnData as the tools see it: its :class:`~bedspace.BEDSpaceModel`, built once and remembered.

The tools (search, distances, embed, evaluate) ask :func:`searchable` for the model of an AnnData; it is built
from the AnnData (sharing ``.obs`` and ``X``, no copy) the first time and remembered while the arrays it was built
from and the values of its label columns are the same, so that a query neither rebuilds the model nor rebinds its
annotator. :func:`bedspace.tl.train` and :func:`bedspace.tl.calibrate` hand over the model they made with
:func:`remember`.

An AnnData whose sets or labels changed since its annotator was fitted gets it fitted again on what it holds now
(the model does that); :func:`searchable` says so first, in a warning that names what changed and what keeps the new
fit, and refuses labels the model has no label for.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._cache import PerObject
from .._keys import DEFAULT, Keys, store
from .._labels import LabelTable
from .._legacy import is_legacy
from .._model import BEDSpaceModel
from .._warnings import warn
from ..annotate import RegionAnnotator

_MODELS = PerObject()


def _state(adata: ad.AnnData, key: str) -> tuple:
    """What the model of ``adata`` under ``key`` was built from (the identities of the arrays it read)."""
    keys = Keys(key)
    record = adata.uns[keys.record]
    return (
        id(adata.varm[keys.region_vectors]),
        id(record.get("label_vectors")),
        id(record.get("labels")),
        id(record.get("annotator")),
        id(adata.var),
        id(adata.obsm[keys.set_vectors]),
        id(adata.obs),
        adata.obs.shape,
        adata.filename if adata.isbacked else id(adata.X),
        _labels_digest(adata, record),
    )


def _labels_digest(adata: ad.AnnData, record) -> int:
    """A hash of the values of ``adata``'s label columns: a column relabelled in place keeps its ``.obs``."""
    fields = [f for f in dict.fromkeys(pd.DataFrame(record["labels"])["field"]) if f in adata.obs.columns]
    if not fields:
        return 0
    return hash(pd.util.hash_pandas_object(adata.obs[fields], index=False).to_numpy().tobytes())


def searchable(adata: ad.AnnData, key: str = DEFAULT, *, warn_changes: bool = True) -> BEDSpaceModel:
    """The model trained into ``adata`` under ``key``, carrying its sets (no copy of them), built once.

    ``warn_changes``: warn when the annotator kept in ``adata`` is fitted again because the sets or their labels
    changed since it was fitted (:func:`bedspace.tl.calibrate`, which fits it again anyway, does not).
    """
    Keys(key).needs_training(adata)
    cache = _MODELS.get(adata) or {}
    found = cache.get(key)
    if found is not None and found[0] == _state(adata, key):
        return found[1]
    change, relabelled = _what_changed(adata, key)
    if change and warn_changes:
        retrain = (
            ". The embedding keeps the labels it was trained on (method='embedding'): run bs.tl.train again to "
            "learn the new ones"
        )
        warn(
            f"{change}: the annotator kept in .uns[{key!r}] is fitted again on the sets and labels as they are now "
            f"(bs.tl.calibrate(adata) keeps the new fit in adata){retrain if relabelled else ''}"
        )
    model = BEDSpaceModel.from_anndata(adata, key, copy=False)
    remember(adata, key, model)
    return model


def _what_changed(adata: ad.AnnData, key: str) -> tuple[str | None, bool]:
    """What changed in ``adata`` since the annotator it keeps was fitted (``None``: nothing), and if labels did.

    Labels are compared set by set only where the annotator's sets are still in their rows (their tokens are
    checked): reordered sets have other labels in each row, and are fitted again without a word, as the same sets.
    A label the model was not trained on is an error: the annotator could only treat its sets as unlabelled.
    """
    keys = Keys(key)
    kept = _kept_labels(adata.uns[keys.record].get("annotator"))
    if kept is None:
        return None, False
    n_sets, codes = kept
    if n_sets != adata.n_obs:
        return f"the annotator was fitted on {n_sets:,} sets and this AnnData has {adata.n_obs:,} (a subset?)", False
    labels = LabelTable.from_frame(pd.DataFrame(adata.uns[keys.record]["labels"]))
    changed = _relabelled(adata, codes, labels)
    if changed and not _same_sets(adata.uns[keys.record]["annotator"], adata):
        changed = {}
    _refuse_unknown_labels(adata, changed, labels)
    parts = []
    gone = [f for f in codes if f not in adata.obs.columns]
    if gone:
        parts.append(f"the label column(s) {gone} are no longer in .obs")
    if changed:
        sets = []
        for field, (rows, then, now) in changed.items():
            was, new = _label_of(labels, field, then[rows[0]]), _label_of(labels, field, now[rows[0]])
            sets.append(f"{field!r} of {rows.size} set(s) (e.g. {adata.obs_names[rows[0]]!r}: {was} -> {new})")
        parts.append(f"labels changed since the annotator was fitted: {'; '.join(sets)}")
    return "; ".join(parts) or None, bool(changed)


def _kept_labels(record) -> tuple[int, dict[str, np.ndarray]] | None:
    """The number of sets an annotator record was fitted on and, per field, each set's label (``None``: no record)."""
    if record is None or is_legacy(record):
        return None
    try:
        by_field = dict(record["by_field"])
        codes = {str(f): np.asarray(e["set_codes"], dtype=np.int64).reshape(-1) for f, e in by_field.items()}
        return int(np.asarray(record["n_sets"])), codes
    except (KeyError, TypeError, ValueError):
        return None  # a damaged record is named when the model binds it


def _relabelled(adata: ad.AnnData, kept: dict[str, np.ndarray], labels: LabelTable) -> dict:
    """Per label field whose sets' labels differ from ``kept``: the rows that differ, the kept and the new labels."""
    changed = {}
    for field, then in kept.items():
        if field in adata.obs.columns and then.size == adata.n_obs:
            now = labels.codes(field, adata.obs[field])
            rows = np.flatnonzero(now != then)
            if rows.size:
                changed[field] = (rows, then, now)
    return changed


def _same_sets(record, adata: ad.AnnData) -> bool:
    """Whether the sets the annotator compares are still in their rows of ``adata`` (their tokens' fingerprints)."""
    try:
        RegionAnnotator.from_record(record, adata.X)
    except ValueError:
        return False
    return True


def _refuse_unknown_labels(adata: ad.AnnData, changed: dict, labels: LabelTable) -> None:
    """An error naming the values the sets were relabelled with that the model has no label for."""
    for field, (rows, _, now) in changed.items():
        unknown = rows[(now[rows] < 0) & adata.obs[field].iloc[rows].notna().to_numpy()]
        if unknown.size:
            values = pd.unique(adata.obs[field].iloc[unknown].astype(str))
            raise ValueError(
                f"labels: {field!r} of {unknown.size} set(s) was changed since bs.tl.train to value(s) the model has "
                f"no label for ({', '.join(map(repr, values[:5]))}; e.g. set {adata.obs_names[unknown[0]]!r}); run "
                "bs.tl.train again to learn them"
            )


def _label_of(labels: LabelTable, field: str, code: int) -> str:
    """The value of label ``code`` of ``field`` as the warning shows it (``no label`` for -1)."""
    return repr(str(labels.values[labels.in_field(field)][code])) if code >= 0 else "no label"


def remember(adata: ad.AnnData, key: str, model: BEDSpaceModel) -> None:
    """Keep ``model`` as the model of ``adata`` under ``key`` (until one of its arrays is replaced)."""
    cache = _MODELS.get(adata)
    if cache is None:
        cache = {}
        _MODELS.set(adata, cache)
    cache[key] = (_state(adata, key), model)


def keep_annotator(adata: ad.AnnData, key: str, model: BEDSpaceModel) -> None:
    """Write the annotator of ``model``'s reference sets into ``adata.uns[key]["annotator"]`` and remember the model."""
    keys = Keys(key)
    record = {**adata.uns[keys.record], "annotator": model.annotator.to_record()}
    calibrated = "calibration, domain and " if model.annotator.is_calibrated else ""
    store(adata, "uns", keys.record, record, f"annotator ({calibrated}classifier of the default r2l annotator)")
    remember(adata, key, model)
