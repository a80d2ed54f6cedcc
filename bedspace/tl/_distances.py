"""``bs.tl.distances``: set–label similarities and the set–set neighbour graph, in scanpy's layout."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .. import _logging as logg
from .._model import BEDSpaceModel

#: Up to this many sets, ``n_neighbors=None`` connects every pair (an exact, dense-as-sparse graph).
ALL_PAIRS_MAX_SETS = 2000
#: Neighbours per set of the k-nearest-neighbour graph used above that size.
DEFAULT_NEIGHBORS = 15


def distances(
    adata: ad.AnnData, *, key: str = "bedspace", n_neighbors: int | None = None, copy: bool = False
) -> ad.AnnData | None:
    """Similarities of every set to every label, and the set–set neighbour graph scanpy uses.

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train`.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    n_neighbors
        Neighbours per set (the set itself included, as in scanpy). ``None``: every pair when the collection
        has at most 2,000 sets (exact all-pairs), else 15 — never a dense sets × sets matrix for a large
        collection. Small graphs are exact; above 4,096 sets scanpy's approximate search (pynndescent) is used.
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes:

    ``adata.obsm[key + "_label_similarity"]``
        DataFrame, sets × labels, raw cosine similarity; columns ``field=value`` (never rescaled, so scores are
        comparable across sets, labels and collections).
    ``adata.obsp[key + "_distances"]``
        Cosine distance (1 − similarity) to each set's neighbours, sparse.
    ``adata.obsp[key + "_connectivities"]``
        UMAP connectivities of that graph (scanpy's weights), sparse.
    ``adata.uns[key + "_neighbors"]``
        ``{"distances_key", "connectivities_key", "params"}``: pass ``neighbors_key=key + "_neighbors"`` to
        ``sc.tl.umap``, ``sc.tl.leiden`` and friends.
    """
    import scanpy as sc

    adata = adata.copy() if copy else adata
    model = BEDSpaceModel.from_anndata(adata, key=key)
    sets = model.unit_set_vectors
    adata.obsm[key + "_label_similarity"] = pd.DataFrame(
        sets @ model.unit_label_vectors.T, index=adata.obs_names, columns=model.labels.index
    )

    if n_neighbors is None:
        n_neighbors = adata.n_obs if adata.n_obs <= ALL_PAIRS_MAX_SETS else DEFAULT_NEIGHBORS
    n_neighbors = int(n_neighbors)
    if not 2 <= n_neighbors <= adata.n_obs:
        raise ValueError(f"n_neighbors must be between 2 and the number of sets ({adata.n_obs}), got {n_neighbors}")
    graph = ad.AnnData(obs=pd.DataFrame(index=adata.obs_names), obsm={"X": np.asarray(sets, dtype=np.float32)})
    sc.pp.neighbors(graph, n_neighbors=n_neighbors, use_rep="X", metric="cosine", random_state=0)
    neighbors_key = key + "_neighbors"
    adata.obsp[key + "_distances"] = graph.obsp["distances"]
    adata.obsp[key + "_connectivities"] = graph.obsp["connectivities"]
    params = dict(graph.uns["neighbors"]["params"])
    params.update(use_rep="X_" + key, n_neighbors=n_neighbors, all_pairs=n_neighbors == adata.n_obs)
    adata.uns[neighbors_key] = {
        "distances_key": key + "_distances",
        "connectivities_key": key + "_connectivities",
        "params": params,
    }
    logg.added(key + "_label_similarity", "set × label cosine similarity", "obsm")
    logg.added(key + "_distances", "set–set cosine distances", "obsp")
    logg.added(key + "_connectivities", "set–set connectivities", "obsp")
    logg.added(neighbors_key, "neighbour graph keys and parameters", "uns")
    return adata if copy else None
