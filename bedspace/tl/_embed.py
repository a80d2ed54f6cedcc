"""``bs.tl.embed``: put a query collection into a reference's trained space (like ``sc.tl.ingest``)."""

from __future__ import annotations

from concurrent.futures import Executor

import anndata as ad

from .._keys import DEFAULT, EMBEDDING_RECORD, Keys, store
from ._collection import searchable


def embed(
    adata: ad.AnnData,
    reference: ad.AnnData,
    *,
    key: str = DEFAULT,
    n_jobs: int | Executor | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Embed the sets of ``adata`` with the embedding trained into ``reference``.

    ``adata`` must be tokenized on the reference's universe (``bs.pp.tokenize(files, reference)`` does that).
    It may be opened backed (``bs.pp.tokenize(..., out=...)`` returns it so): its ``X`` is read a chunk of rows
    at a time, never whole, so memory is the reference's region vectors, the set vectors and one chunk.
    Afterwards :func:`bedspace.tl.distances`, :func:`bedspace.pl.label_similarity` and scanpy work on ``adata``
    as on a trained collection.

    Parameters
    ----------
    adata
        The query collection (sets × the reference's universe regions), in memory or backed.
    reference
        A collection trained with :func:`bedspace.tl.train`.
    key
        The ``key_added`` of :func:`~bedspace.tl.train` in ``reference``.
    n_jobs
        A ``dask.distributed`` client (or any :class:`concurrent.futures.Executor`) embeds a backed ``adata`` on
        its workers, a chunk of rows per task, each worker reading its rows from the ``.h5ad`` (which must be on a
        filesystem the workers share); only the set vectors come back. Otherwise the embedding runs here, on
        numba's threads.
    key_added
        Where results go in ``adata`` (default: ``key``).
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes (``k`` = ``key_added`` or ``key``):

    ``adata.obsm["X_" + k]``
        Set vectors, sets × dim, exactly as the reference's own sets are embedded.
    ``adata.uns[k]``
        The reference embedding's ``params``, ``labels``, ``label_vectors``, ``loss`` and ``universe`` (the
        region vectors stay in the reference), plus ``reference`` (its number of sets and key).

    Raises
    ------
    ValueError
        ``adata`` is not tokenized on the reference's universe (the first differing region is named).
    """
    model = searchable(reference, key)
    model.universe.check_same(adata.var, what="the query AnnData")
    written = Keys(key_added or key)
    adata = adata.copy() if copy else adata
    # a chunk of rows at a time: a backed collection is never read whole
    store(adata, "obsm", written.set_vectors, model.embed(adata, n_jobs=n_jobs), "set vectors")
    trained = reference.uns[Keys(key).record]
    record = dict(adata.uns.get(written.record, {}))  # keeps what bs.pp.tokenize recorded under the same key
    record.update({name: trained[name] for name in EMBEDDING_RECORD if name in trained})
    record["reference"] = {"key": key, "n_sets": int(reference.n_obs)}
    store(adata, "uns", written.record, record, f"{', '.join(EMBEDDING_RECORD)} of the reference")
    return adata if copy else None
