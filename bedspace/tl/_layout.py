"""``bs.tl.layout``: one 2-D map of the joint space, sets and labels together (what ``bs.pl.embedding`` draws)."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._keys import DEFAULT, Keys, store, trained_labels
from .._neighbors import neighbor_graph
from .._similarity import unit_rows

BASES = ("umap", "pca")


def layout(
    adata: ad.AnnData,
    *,
    basis: Literal["umap", "pca"] = "umap",
    key: str = DEFAULT,
    n_neighbors: int = 15,
    random_state: int = 0,
    key_added: str | None = None,
    copy: bool = False,
) -> ad.AnnData | None:
    """Lay out region sets and labels together in two dimensions, so a label sits among the sets that carry it.

    Set vectors and (normalised) label vectors are placed by one layout of both — UMAP on their cosine
    neighbour graph (scanpy), or PCA. Labels no training set had (zero vectors) are left out.

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train` (or embedded with :func:`bedspace.tl.embed`).
    basis
        ``"umap"`` or ``"pca"``.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    n_neighbors
        Neighbours of the UMAP graph (at most the number of points − 1).
    random_state
        Seed of the layout.
    key_added
        Prefix of the keys written (default: ``key``).
    copy
        Return a copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the copy when ``copy=True``. Writes (``k`` = ``key_added`` or ``key``):

    ``adata.obsm["X_" + k + "_" + basis]``
        Coordinates of the sets (sets × 2): ``sc.pl.embedding(adata, basis=k + "_" + basis)`` draws them.
    ``adata.uns[k + "_" + basis]``
        ``labels`` (names of the placed labels), ``label_coordinates`` (labels × 2) and ``params``.
    """
    import scanpy as sc

    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    keys = Keys(key)
    labels, label_vectors = trained_labels(adata, key)
    adata = adata.copy() if copy else adata
    placed = np.any(label_vectors != 0, axis=1)
    points = np.vstack([unit_rows(np.asarray(adata.obsm[keys.set_vectors])), label_vectors[placed]])
    if basis == "umap":
        joint = ad.AnnData(obs=pd.DataFrame(index=[f"p{i}" for i in range(len(points))]), obsm={"X": points})
        k = max(2, min(int(n_neighbors), len(points) - 1))
        graph = neighbor_graph(points, k, key="neighbors", use_rep="X", random_state=random_state)
        joint.obsp["distances"], joint.obsp["connectivities"], joint.uns["neighbors"] = graph
        sc.tl.umap(joint, random_state=random_state)
        xy = np.asarray(joint.obsm["X_umap"])
    else:
        centred = points - points.mean(axis=0)
        xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    name = Keys(key_added or key).layout(basis)
    store(adata, "obsm", name, xy[: adata.n_obs], f"{basis.upper()} coordinates of the sets")
    store(
        adata,
        "uns",
        name.removeprefix("X_"),
        {
            "labels": np.asarray(labels.names[placed], dtype=object),
            "label_coordinates": xy[adata.n_obs :],
            "params": {"basis": basis, "key": key, "n_neighbors": int(n_neighbors), "random_state": int(random_state)},
        },
        f"{basis.upper()} coordinates of the labels",
    )
    return adata if copy else None
