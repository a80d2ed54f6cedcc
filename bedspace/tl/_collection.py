"""A trained AnnData as the tools see it: its :class:`~bedspace.BEDSpaceModel`, built once and remembered.

The tools (search, distances, embed, evaluate) ask :func:`searchable` for the model of an AnnData; it is built
from the AnnData (sharing ``.obs`` and ``X``, no copy) the first time and remembered while the arrays it was built
from are the same objects, so that a query neither rebuilds the model nor rebinds its annotator.
:func:`bedspace.tl.train` and :func:`bedspace.tl.calibrate` hand over the model they made with :func:`remember`.
"""

from __future__ import annotations

import anndata as ad

from .._cache import PerObject
from .._keys import DEFAULT, Keys, store
from .._model import BEDSpaceModel

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
    )


def searchable(adata: ad.AnnData, key: str = DEFAULT) -> BEDSpaceModel:
    """The model trained into ``adata`` under ``key``, carrying its sets (no copy of them), built once."""
    Keys(key).needs_training(adata)
    cache = _MODELS.get(adata) or {}
    found = cache.get(key)
    if found is not None and found[0] == _state(adata, key):
        return found[1]
    model = BEDSpaceModel.from_anndata(adata, key, copy=False)
    remember(adata, key, model)
    return model


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
