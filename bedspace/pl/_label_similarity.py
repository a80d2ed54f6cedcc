"""``bs.pl.label_similarity``: sets × labels heatmap of cosine similarity."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._keys import DEFAULT, Keys
from ._utils import finish, new_axes


def label_similarity(
    adata: ad.AnnData,
    *,
    field: str | None = None,
    groupby: str | None = None,
    cluster: bool = True,
    key: str = DEFAULT,
    cmap: str = "RdBu_r",
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Heatmap of every set's cosine similarity to every label.

    Draws ``adata.obsm[key + "_label_similarity"]``, written by :func:`bedspace.tl.distances`: run it first.

    Parameters
    ----------
    adata
        A collection on which :func:`bedspace.tl.distances` ran.
    field
        Only the labels of this field (e.g. ``"organ"``); default all.
    groupby
        ``.obs`` column to order and mark the rows by (e.g. the true label); default: the set order.
    cluster
        Order labels, and sets within each group, by hierarchical clustering (average linkage) of their
        similarity profiles, so that alike rows and columns sit together.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    cmap
        Colour map; centred on 0 from -1 to 1.
    ax, show, save
        Draw into ``ax``; show the figure (default: when no ``ax`` is given and matplotlib is interactive);
        save it to this path.

    Returns
    -------
    The Axes.
    """
    name = Keys(key).label_similarity
    if name not in adata.obsm:
        raise KeyError(f"no set × label similarities under adata.obsm[{name!r}]: run bs.tl.distances(adata) first")
    similarity = adata.obsm[name]
    if not isinstance(similarity, pd.DataFrame):
        raise TypeError(f"adata.obsm[{name!r}] must be the DataFrame bs.tl.distances writes")
    if field is not None:
        columns = [c for c in similarity.columns if c.split("=", 1)[0] == field]
        if not columns:
            raise KeyError(f"no labels of field {field!r}")
        similarity = similarity[columns]
    if cluster and similarity.shape[1] > 2:
        similarity = similarity.iloc[:, _leaf_order(similarity.to_numpy().T)]
    groups = np.zeros(len(similarity), dtype=object)
    if groupby is not None:
        if groupby not in adata.obs.columns:
            raise KeyError(f"no column {groupby!r} in .obs; available: {list(adata.obs.columns)}")
        groups = adata.obs[groupby].astype(str).to_numpy()
    order = []
    for group in sorted(set(groups)) if groupby is not None else [0]:
        rows = np.flatnonzero(groups == group)
        if cluster and rows.size > 2:
            rows = rows[_leaf_order(similarity.to_numpy()[rows])]
        order.extend(rows)
    order = np.asarray(order)
    groups = groups[order] if groupby is not None else None
    values = similarity.to_numpy()[order]
    # room for the set names on the left and the colour bar on the right, or constrained layout has none left
    names_width = 0.07 * max((len(str(n)) for n in similarity.index), default=0)
    fig, ax = new_axes(ax, size=(2.5 + names_width + 0.45 * values.shape[1], 1.5 + 0.22 * values.shape[0]))
    image = ax.imshow(values, cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(values.shape[1]), [c if field is None else c.split("=", 1)[1] for c in similarity.columns])
    ax.tick_params(axis="x", rotation=90)
    ax.set_yticks(range(values.shape[0]), similarity.index.to_numpy()[order])
    if groups is not None:
        boundaries = np.flatnonzero(groups[1:] != groups[:-1]) + 0.5
        for y in boundaries:
            ax.axhline(y, color="black", linewidth=0.8)
        ax.set_ylabel(groupby)
    ax.set_xlabel(f"{field} labels" if field else "labels")
    ax.set_title("cosine similarity of sets to labels")
    fig.colorbar(image, ax=ax, shrink=0.6, label="cosine similarity")
    return finish(ax, show=show, save=save)


def _leaf_order(profiles: np.ndarray) -> np.ndarray:
    """Order of rows along the leaves of an average-linkage tree of their profiles."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    return leaves_list(linkage(profiles, method="average", metric="euclidean"))
