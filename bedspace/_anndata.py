"""A trained AnnData and a :class:`~bedspace.BEDSpaceModel`: what each key holds, in both directions.

:func:`embedding_of` and :func:`reference_of` read the embedding and the reference sets out of an AnnData;
:func:`anndata_of` and :func:`write_embedding` write a model into one. The model's methods
(``from_anndata``, ``to_anndata``, ``write_into``) are these; the AnnData keys are those of
:class:`~bedspace._keys.Keys`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._engine.native import SetSpace
from ._keys import TOKENIZE, Keys
from ._labels import LabelTable, without_shared_labels
from ._lazy import is_sparse
from ._legacy import is_legacy, legacy_record
from ._plain import plain
from ._reference import ReferenceSets
from ._universe import Universe
from .annotate._estimator import MIN_SETS_TO_CALIBRATE

if TYPE_CHECKING:
    import anndata as ad

#: What :func:`bedspace.pp.tokenize` records of how a collection was tokenized, kept by the model.
PROVENANCE = ("tokenize", "version")


def embedding_of(adata: ad.AnnData, key: str) -> dict:
    """The arguments of :class:`~bedspace.BEDSpaceModel` for the embedding trained into ``adata`` under ``key``."""
    keys = Keys(key)
    keys.needs_training(adata)
    record = adata.uns[keys.record]
    tokenized = adata.uns.get(TOKENIZE, {})
    return {
        "universe": Universe.from_anndata(adata, record=record.get("universe") or tokenized.get("universe", {})),
        "region_vectors": np.asarray(adata.varm[keys.region_vectors]),
        "labels": LabelTable.from_frame(pd.DataFrame(record["labels"])),
        "label_vectors": np.asarray(record["label_vectors"]),
        "params": plain(record.get("params", {})),
        "loss": np.asarray(record.get("loss", []), dtype=np.float64),
        "provenance": {name: tokenized[name] for name in PROVENANCE if name in tokenized},
        "space": SetSpace.from_record(record.get("set_space")),
    }


def reference_of(adata: ad.AnnData, key: str, labels: LabelTable, params: dict, *, copy: bool) -> ReferenceSets:
    """The sets of ``adata`` as a model's reference, with the annotator ``.uns[key]`` keeps (bound to ``X``).

    ``copy=False`` shares ``.obs`` and ``X``; a backed AnnData's tokens are read from its file as needed.
    """
    keys = Keys(key)
    X = adata.X
    if copy and not adata.isbacked and is_sparse(X):
        X = X.copy()
    tokens = X if adata.isbacked or is_sparse(X) else None
    obs = adata.obs.copy() if copy else adata.obs
    reference = ReferenceSets(obs, np.asarray(adata.obsm[keys.set_vectors]), tokens)
    seed = int(params.get("random_state", 0) or 0)
    record = adata.uns[keys.record].get("annotator")
    if is_legacy(record) or "classifier" in adata.uns[keys.record]:  # written by bedspace before format 3
        record = legacy_record(reference, labels, record, adata.uns[keys.record].get("classifier"), seed)
    chromosomes = adata.var["chrom"].to_numpy() if "chrom" in adata.var.columns else None
    options = {"random_state": seed, "chromosomes": chromosomes}
    if record is not None:  # fitted again (the sets changed) as it was fitted, as far as the sets allow
        options["calibrate"] = _calibrated_again(record, reference, labels)
    reference.bind_annotator(record, labels, **options)
    return reference


def _calibrated_again(record, reference: ReferenceSets, labels: LabelTable) -> bool:
    """Whether the annotator of ``record``, fitted again on ``reference``, is calibrated.

    As the kept one was, unless a label field of these sets has no value two sets share (no calibration can be
    fitted on it: a subset may lose what the whole collection had).
    """
    try:
        calibrated = bool(np.asarray(record["params"]["calibrate"]))
    except (KeyError, TypeError, ValueError):
        calibrated = True  # a damaged record is named when it is bound
    if not calibrated or reference.tokens is None:
        return calibrated
    codes = reference.label_codes(labels)
    return not without_shared_labels(codes, reference.tokens.n_tokens, minimum_sets=MIN_SETS_TO_CALIBRATE)


def anndata_of(model, key: str) -> ad.AnnData:
    """The sets a model carries as an AnnData laid out as :func:`bedspace.tl.train` leaves one."""
    import anndata as ad

    reference = model.need_reference()
    keys = Keys(key)
    tokens = reference.tokens
    if tokens is None:
        import scipy.sparse as sp

        X = sp.csr_matrix((len(reference), len(model.universe)), dtype=np.float32)
    else:
        X = tokens.matrix.copy() if tokens.matrix is not None else tokens.read().to_csr()
    adata = ad.AnnData(X=X, obs=reference.metadata.copy(), var=model.universe.to_var())
    adata.obsm[keys.set_vectors] = np.array(reference.vectors)
    write_embedding(model, adata, key)
    if model.annotator is not None:
        adata.uns[keys.record]["annotator"] = model.annotator.to_record()
    return adata


def write_embedding(model, adata: ad.AnnData, key: str) -> None:
    """Write a model's embedding into an AnnData on its universe: ``.varm[key]``, ``.uns[key]`` (and the provenance)."""
    model.universe.check_same(adata.var, what="the AnnData")
    keys = Keys(key)
    universe = model.universe.record()
    adata.varm[keys.region_vectors] = np.asarray(model.region_vectors, dtype=np.float32)
    record = dict(adata.uns.get(keys.record, {}))
    record.pop("annotator", None)
    record.pop("set_space", None)
    if model.space is not None:
        record["set_space"] = {name: np.asarray(values) for name, values in model.space.record().items()}
    record.update(
        params=model.params, labels=model.label_table.frame, label_vectors=model.label_vectors, loss=model.loss,
        universe={**dict(record.get("universe", {})), **universe},
    )  # fmt: skip
    adata.uns[keys.record] = record
    if model.provenance:  # how the sets were tokenized, where bs.pp.tokenize records it
        tokenized = {"universe": universe, **model.provenance}
        adata.uns[TOKENIZE] = {**tokenized, **dict(adata.uns.get(TOKENIZE, {}))}
