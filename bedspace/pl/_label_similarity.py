"""``bs.pl.label_similarity``: sets × labels heatmap of cosine similarity."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import ConnectionPatch, Rectangle
from matplotlib.transforms import blended_transform_factory, offset_copy

from .._keys import DEFAULT, Keys
from ._utils import finish, new_axes, short, spread

#: Font size (points) of the names of labels, groups and sets.
FONT = 8
#: Most set names drawn along the rows when no ``groupby`` is given (beyond, the rows are counted, not named).
MOST_SET_NAMES = 150
#: Name of the group of sets without a value in ``groupby``.
NO_VALUE = "(no value)"


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

    With ``groupby``, the rows are the sets grouped by that column and each group is named along the rows; the
    groups follow the label columns, so a set group whose value is a label sits level with that label's column
    and a collection whose sets resemble their own labels shows a diagonal of boxed blocks (the group of
    ``organ=blood`` under the column ``blood``, and so on). Groups whose value is no label shown follow the
    column they resemble most; sets without a value come last.

    Parameters
    ----------
    adata
        A collection on which :func:`bedspace.tl.distances` ran.
    field
        Only the labels of this field (e.g. ``"organ"``); default all.
    groupby
        ``.obs`` column to group and name the rows by (e.g. the true label, ``groupby="organ"`` with
        ``field="organ"``); default: one row per set, named.
    cluster
        Order labels, and sets within each group, by hierarchical clustering (average linkage) of their
        similarity profiles, so that alike rows and columns sit together; otherwise labels in their stored order.
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
    if groupby is not None and groupby not in adata.obs.columns:
        raise KeyError(f"no column {groupby!r} in .obs; available: {list(adata.obs.columns)}")
    if cluster and similarity.shape[1] > 2:
        similarity = similarity.iloc[:, _leaf_order(similarity.to_numpy().T)]
    values = similarity.to_numpy()
    label_fields = [str(c).split("=", 1)[0] for c in similarity.columns]
    label_values = [str(c).split("=", 1)[-1] for c in similarity.columns]

    if groupby is None:
        blocks = [("", np.arange(len(similarity)), None)]
    else:
        blocks = _groups(adata.obs[groupby], values, label_fields, label_values, groupby)
    order = []
    for _, rows, _ in blocks:
        if cluster and rows.size > 2:
            rows = rows[_leaf_order(values[rows])]
        order.extend(rows)
    order = np.asarray(order, dtype=np.int64)
    values = values[order]
    n_rows, n_columns = values.shape

    column_names = [
        short(v if field is not None else str(c)) for v, c in zip(label_values, similarity.columns, strict=True)
    ]
    if groupby is not None:
        row_names = [short(g) for g, _, _ in blocks]
        # tall enough that the names of the groups beside the largest one find room near their rows
        largest = max(rows.size for _, rows, _ in blocks)
        per_row = 0.16 * (len(blocks) - 1) / max(n_rows - largest, 1)
        row_height = max(float(np.clip(per_row, 0.035, 0.07)) * n_rows, 0.17 * len(blocks))
    elif n_rows <= MOST_SET_NAMES:
        row_names = [short(str(n)) for n in similarity.index[order]]
        row_height = 0.16 * n_rows
    else:
        row_names = []
        row_height = 0.035 * n_rows
    names_width = 0.065 * max((len(n) for n in row_names), default=0) + 0.3
    labels_height = 0.055 * max((len(n) for n in column_names), default=0)
    fig, ax = new_axes(ax, size=(names_width + 1.6 + 0.3 * n_columns, max(row_height, 2.5) + labels_height + 1.0))
    image = ax.imshow(values, cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_columns), column_names, fontsize=FONT, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_xlabel(f"{field} labels" if field else "labels")
    ax.set_title("cosine similarity of sets to labels")
    fig.colorbar(image, ax=ax, shrink=min(0.6, 4 / max(fig.get_figheight(), 1) + 0.2), label="cosine similarity")
    if groupby is None:
        if row_names:
            ax.set_yticks(range(n_rows), row_names, fontsize=FONT)
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{n_rows} sets")
    else:
        _name_groups(ax, blocks, n_rows, groupby)
    return finish(ax, show=show, save=save)


def _groups(
    column: pd.Series, values: np.ndarray, label_fields: list[str], label_values: list[str], groupby: str
) -> list[tuple[str, np.ndarray, int | None]]:
    """The groups of sets in drawing order: ``(name, rows, column of its own label or None)``.

    A group whose value is a label shown is placed at that label's column (a label of the field ``groupby``
    first); any other group at the column of its highest mean similarity, after the group whose label that is;
    sets without a value last.
    """
    present = column.notna().to_numpy()
    texts = column.astype(object).where(column.notna()).astype(str).to_numpy()
    texts[~present] = NO_VALUE
    groups = list(dict.fromkeys(texts[present]))
    if not present.all():
        groups.append(NO_VALUE)
    placed = []
    for group in groups:
        rows = np.flatnonzero(texts == group)
        if group == NO_VALUE and not present.all():
            placed.append(((len(label_values) + 1, 2, 0.0), group, rows, None))
            continue
        matches = [i for i, v in enumerate(label_values) if v == group]
        own = [i for i in matches if label_fields[i] == groupby]
        match = (own or matches or [None])[0]
        if match is not None:
            placed.append(((match, 0, 0.0), group, rows, match))
        else:
            means = values[rows].mean(axis=0)
            best = int(np.argmax(means))
            placed.append(((best, 1, -float(means[best])), group, rows, None))
    placed.sort(key=lambda p: p[0])
    return [(group, rows, match) for _, group, rows, match in placed]


def _name_groups(ax: Axes, blocks: list, n_rows: int, groupby: str) -> None:
    """Separate the groups of rows by lines, box each group's own label, and name each group beside its rows.

    The names are the y tick labels; when a group is too thin for its name, the names are spread apart (as close
    to their groups as they can be) and each is joined to its group by a thin line.
    """
    sizes = np.array([rows.size for _, rows, _ in blocks])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    centres = starts + (sizes - 1) / 2
    for start in starts[1:]:
        ax.axhline(start - 0.5, color="black", linewidth=0.6)
    for start, size, (_, _, match) in zip(starts, sizes, blocks, strict=True):
        if match is not None:
            ax.add_patch(
                Rectangle((match - 0.5, start - 0.5), 1, size, fill=False, edgecolor="black", linewidth=1.2, zorder=3)
            )
    fig = ax.figure
    fig.draw_without_rendering()  # the layout settles the axes' height, hence how many rows a name covers
    height_points = ax.get_window_extent().height * 72 / fig.dpi
    gap = 1.25 * FONT * n_rows / max(height_points, 1)
    positions = spread(centres, gap, -0.5 + gap / 2, n_rows - 0.5 - gap / 2)
    moved = np.abs(positions - centres) > 0.25 * gap
    joint = 10  # points of the lines joining names to their groups
    ax.set_yticks(positions, [short(name) for name, _, _ in blocks], fontsize=FONT)
    ax.tick_params(axis="y", length=0, pad=joint + 3 if moved.any() else 3)
    if moved.any():
        mixed = blended_transform_factory(ax.transAxes, ax.transData)  # x: the axes' left edge, y: a row
        outside = offset_copy(mixed, fig=fig, x=-joint, units="points")
        for centre, position in zip(centres, positions, strict=True):
            ax.add_artist(
                ConnectionPatch(
                    (0, centre),
                    (0, position),
                    coordsA=mixed,
                    coordsB=outside,
                    color="0.4",
                    linewidth=0.6,
                    clip_on=False,
                )  # fmt: skip
            )
    ax.set_ylabel(f"sets by {groupby}")


def _leaf_order(profiles: np.ndarray) -> np.ndarray:
    """Order of rows along the leaves of an average-linkage tree of their profiles."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    return leaves_list(linkage(profiles, method="average", metric="euclidean"))
