"""``bs.tl.distances``: set–label similarities and the set–set neighbour graph, in scanpy's layout."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import DEFAULT, Keys, store, trained_labels
from .._neighbors import neighbor_graph
from .._params import whole_number
from .._similarity import unit_rows

#: Up to this many sets, ``n_neighbors=None`` connects every pair (an exact, dense-as-sparse graph).
ALL_PAIRS_MAX_SETS = 2000
#: Neighbours per set of the k-nearest-neighbour graph used above that size.
DEFAULT_NEIGHBORS = 15


def distances(
    adata: ad.AnnData,
    *,
    key: str = DEFAULT,
    n_neighbors: int | None = None,
    neighbors: bool = True,
    key_added: str | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Similarities of every set to every label, and the set–set neighbour graph scanpy uses.

    Reads the set vectors (``.obsm["X_" + key]``) and the labels (``.uns[key]``) that :func:`bedspace.tl.train`
    or :func:`bedspace.tl.embed` wrote. The graph is the one :func:`scanpy.pp.neighbors` builds with
    ``metric="cosine"`` (exact nearest neighbours, UMAP connectivities; the same numbers to float32 rounding),
    computed here in numpy: scanpy's own compiles UMAP's code in every new Python process (11–33 s on 2 cores).

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train` or embedded with :func:`bedspace.tl.embed`.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    n_neighbors
        Neighbours per set (the set itself included, as in scanpy). ``None``: every pair when the collection
        has at most 2,000 sets (exact all-pairs), else 15 — never a dense sets × sets matrix for a large
        collection. The neighbours are exact: every pair of sets is compared (4.4 s for 20,000 sets, 32 s for
        50,000 on 2 cores; the time grows with the square of the number of sets).
    neighbors
        Build the neighbour graph. ``False``: only the set × label similarities, e.g. for
        :func:`bedspace.pl.label_similarity` alone.
    key_added
        Prefix of the keys written (default: ``key``).
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes (``k`` = ``key_added`` or ``key``):

    ``adata.obsm[k + "_label_similarity"]``
        DataFrame, sets × labels, raw cosine similarity; columns ``field=value`` (never rescaled, so scores are
        comparable across sets, labels and collections).
    ``adata.obsp[k + "_neighbors_distances"]`` (with ``neighbors``; so are the two keys below)
        Cosine distance (1 − similarity) to each set's neighbours, sparse.
    ``adata.obsp[k + "_neighbors_connectivities"]``
        UMAP connectivities of that graph (scanpy's weights), sparse.
    ``adata.uns[k + "_neighbors"]``
        ``{"distances_key", "connectivities_key", "params"}`` as :func:`scanpy.pp.neighbors` writes them: pass
        ``neighbors_key=k + "_neighbors"`` to ``sc.tl.umap``, ``sc.tl.leiden`` and friends.
    """
    keys = Keys(key)
    labels, label_vectors = trained_labels(adata, key)
    written = Keys(key_added or key)
    if n_neighbors is None:
        n_neighbors = adata.n_obs if adata.n_obs <= ALL_PAIRS_MAX_SETS else DEFAULT_NEIGHBORS
    between = f"between 2 and the number of sets ({adata.n_obs})"
    if whole_number(n_neighbors, "n_neighbors", minimum=2, expected=f"a whole number {between}") > adata.n_obs:
        raise ValueError(f"n_neighbors must be {between}, got {n_neighbors}")
    adata = adata.copy() if copy else adata
    sets = unit_rows(np.asarray(adata.obsm[keys.set_vectors]))
    similarity = pd.DataFrame(sets @ label_vectors.T, index=adata.obs_names, columns=labels.names)
    store(adata, "obsm", written.label_similarity, similarity, "set × label cosine similarity")
    if not neighbors:
        return adata if copy else None
    graph_distances, connectivities, entry = neighbor_graph(
        sets, int(n_neighbors), key=written.neighbors, use_rep=keys.set_vectors
    )
    entry["params"]["all_pairs"] = bool(n_neighbors == adata.n_obs)
    store(adata, "obsp", written.distances, graph_distances, "cosine distances to each set's neighbours")
    store(adata, "obsp", written.connectivities, connectivities, "UMAP connectivities of that graph")
    store(adata, "uns", written.neighbors, entry, "the graph's keys and parameters, as scanpy's")
    return adata if copy else None
