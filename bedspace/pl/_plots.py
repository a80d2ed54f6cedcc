"""``bs.pl``: the joint map of sets and labels, search results, training loss, evaluation."""

from __future__ import annotations

import os
from typing import Literal

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from .._keys import DEFAULT, Keys
from ._utils import categories_of, category_colours, default_colours, finish, new_axes, place_names, short

#: Most entries in one column of a legend beside a map (more: another column).
LEGEND_ROWS = 24
#: Markers of the labels of each field in the joint map (the first field's: diamonds).
LABEL_MARKERS = ("D", "s", "^", "v", "p", "h", "o")


def embedding(
    adata: ad.AnnData,
    *,
    color: str | None = None,
    labels: bool | str | None = None,
    basis: Literal["umap", "pca"] = "umap",
    key: str = DEFAULT,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """The joint picture: region sets and labels in one 2-D map of the shared space.

    Draws what :func:`bedspace.tl.layout` computed (``.obsm["X_" + key + "_" + basis]`` for the sets and
    ``.uns[key + "_" + basis]`` for the labels): run it first. Sets are points, coloured by ``color`` with a
    legend beside the map; labels are diamonds (one marker per field when several fields are shown, told under
    the map), each named by its value next to it without covering another name (a name moved away is joined to
    its marker by a line). The labels of the ``color`` field have their category's colour, so a label sits
    visibly among the sets that carry it.

    Parameters
    ----------
    adata
        A collection laid out with :func:`bedspace.tl.layout`.
    color
        ``.obs`` column to colour the sets by (categorical or boolean: a legend, in scanpy's colours;
        numeric: a colour bar).
    labels
        Which labels to mark and name: a field name (``"organ"``) for that field's labels; ``True`` for every
        label; ``False`` for none. Default: the labels of the ``color`` field when it is a label field, else every
        label.
    basis
        ``"umap"`` or ``"pca"``: which layout to draw.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes. With a categorical ``color``, writes the colours as scanpy keeps them (when missing, too few or
    invalid; valid colours are kept), so ``sc.pl.embedding(adata, basis=key + "_" + basis, color=color)`` draws
    the same:

    ``adata.uns[color + "_colors"]``
        One colour per category of ``adata.obs[color]``, as hex strings: scanpy's default palette.
    """
    name = Keys(key).layout(basis)
    placed = adata.uns.get(name.removeprefix("X_"))
    if name not in adata.obsm or placed is None:
        raise KeyError(f"no {basis} layout under key {key!r}: run bs.tl.layout(adata, basis={basis!r}) first")
    if color is not None and color not in adata.obs.columns:
        raise KeyError(f"no column {color!r} in .obs; available: {list(adata.obs.columns)}")
    sets_xy = np.asarray(adata.obsm[name])
    names = pd.Index(np.asarray(placed["labels"]).astype(str))
    labels_xy = np.asarray(placed["label_coordinates"]).reshape(len(names), 2)
    fields = np.array([n.split("=", 1)[0] for n in names])
    if labels is None:
        labels = color if color is not None and color in set(fields) else True
    keep = np.ones(len(names), bool)
    if isinstance(labels, str):
        keep = fields == labels
        if not keep.any():
            raise KeyError(f"no labels of field {labels!r}; fields are {sorted(set(fields))}")
    elif not labels:
        keep[:] = False
    names, labels_xy, fields = names[keep], labels_xy[keep], fields[keep]

    categorical = color is not None and not _is_numeric(adata.obs[color])
    colours: dict[str, str] = {}
    beside = 1.0  # inches right of the map: the colour bar, or the legend of the categories
    if categorical:
        values = categories_of(adata, color)
        colours = category_colours(adata, color)
        entries = [str(c) for c in values.categories] + (["NA"] if (values.codes < 0).any() else [])
        columns = max(int(np.ceil(len(entries) / LEGEND_ROWS)), 1)
        beside = columns * (0.45 + 0.065 * max((len(short(e)) for e in entries), default=0))
    side = 6 + 0.06 * max(len(names) - 20, 0)  # room for the names of many labels
    fig, ax = new_axes(ax, size=(side + 0.5 + beside, side))
    if color is None:
        ax.scatter(*sets_xy.T, s=18, c="0.6", linewidths=0)
    elif not categorical:
        dots = ax.scatter(*sets_xy.T, s=18, c=adata.obs[color].to_numpy(), cmap="viridis", linewidths=0)
        fig.colorbar(dots, ax=ax, shrink=0.6, label=color)
    else:
        codes = values.codes
        if (codes < 0).any():
            ax.scatter(*sets_xy[codes < 0].T, s=18, color="lightgray", linewidths=0, zorder=0)
        for code, category in enumerate(values.categories):
            ax.scatter(*sets_xy[codes == code].T, s=18, color=colours[str(category)], linewidths=0)

    shown = list(dict.fromkeys(fields))
    markers = dict(zip(shown, [LABEL_MARKERS[i % len(LABEL_MARKERS)] for i in range(len(shown))], strict=True))
    texts = np.array([n.split("=", 1)[1] for n in names], dtype=object)
    for field, marker in markers.items():
        rows = fields == field
        own = field == color and categorical
        ax.scatter(
            *labels_xy[rows].T, s=70 if marker == "D" else 55, marker=marker,
            c=[colours.get(t, "black") for t in texts[rows]] if own else "black",
            edgecolors="black" if own else "white", linewidths=0.8, zorder=3,
        )  # fmt: skip
    if len(shown) > 1:  # which marker is which field, under the map
        which = [Line2D([], [], linestyle="", marker=m, markersize=7, color="black") for m in markers.values()]
        key_to_marks = ax.legend(
            which, [f"{f} label" for f in markers], loc="upper center", bbox_to_anchor=(0.5, -0.06),
            ncols=len(which), frameon=False, fontsize="small", handletextpad=0.2, borderaxespad=0,
        )  # fmt: skip
        if categorical:  # kept beside the legend of the categories, which replaces ax's legend
            ax.add_artist(key_to_marks)
            key_to_marks.set_clip_on(False)  # add_artist clips to the axes: drawn and laid out outside them
    if categorical:
        dots = [
            Line2D([], [], linestyle="", marker="o", markersize=6, markeredgewidth=0, color=c)
            for c in [*colours.values(), "lightgray"][: len(entries)]
        ]
        ax.legend(
            dots, [short(e) for e in entries], title=color, loc="center left", bbox_to_anchor=(1.02, 0.5),
            frameon=False, fontsize="small", ncols=columns, handletextpad=0.2, columnspacing=0.8, borderaxespad=0,
        )  # fmt: skip
    ax.set_xlabel(f"{basis.upper()} 1")
    ax.set_ylabel(f"{basis.upper()} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    if not len(names):
        ax.set_title("region sets")
    elif len(shown) == 1:
        ax.set_title(f"region sets (points) and {shown[0]} labels (diamonds) in one space")
    else:
        ax.set_title("region sets (points) and labels (markers) in one space")
    if len(names):  # last: the names find room once everything else has its place
        place_names(ax, labels_xy, [short(t) for t in texts], points=sets_xy)
    return finish(ax, show=show, save=save)


def _is_numeric(values: pd.Series) -> bool:
    """Whether scanpy would draw the column with a colour bar (numbers; not categories, not booleans)."""
    return (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and not isinstance(values.dtype, pd.CategoricalDtype)
    )


def search(
    result: pd.DataFrame,
    *,
    color: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Ranked results of a search as horizontal bars, best at the top.

    The bars are the probability of an annotation when the result has one (r2l by the default annotator), else
    the score.

    Parameters
    ----------
    result
        A DataFrame from :func:`bedspace.tl.search` (one query; filter ``result[result["query"] == q]``).
    color
        Column to colour the bars by (default ``field`` for labels, else none).
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """
    if "query" in result.columns and result["query"].nunique() > 1:
        raise ValueError('plot one query at a time: result[result["query"] == q]')
    if color is None and "field" in result.columns:
        color = "field"
    if color is not None and color not in result.columns:
        raise KeyError(f"no column {color!r} in the result; columns are {list(result.columns)}")
    fig, ax = new_axes(ax, size=(7, 1 + 0.3 * len(result)))
    y = np.arange(len(result))[::-1]
    # a query out of the domain has no probabilities (the annotator abstains): its labels' scores are drawn
    measure = "probability" if "probability" in result.columns and result["probability"].notna().any() else "score"
    if color is None:
        ax.barh(y, result[measure], color="0.4")
    else:
        values = result[color].astype(str)
        colours = dict(zip(dict.fromkeys(values), default_colours(values.nunique()), strict=True))
        ax.barh(y, result[measure], color=[colours[v] for v in values])
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
        ax.legend(
            handles,
            colours.keys(),
            title=color,
            loc="upper left",
            bbox_to_anchor=(1.02, 1),
            fontsize="small",
            frameon=False,
        )  # beside the bars, never over them
    ax.set_yticks(y, result["name"].astype(str))
    ax.axvline(0, color="black", linewidth=0.6)
    if measure == "probability":
        ax.set_xlabel("probability")
        ax.set_xlim(0, 1)
    else:
        if "shared_labels" in result.columns:  # r2r by default: the cosine plus the labels the sets share
            ax.set_xlabel("score (cosine similarity + shared labels)")
        else:
            ax.set_xlabel("classifier score" if "in_domain" in result.columns else "cosine similarity")
    return finish(ax, show=show, save=save)


def loss(
    adata: ad.AnnData,
    *,
    key: str = DEFAULT,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Training loss per epoch (``adata.uns[key]["loss"]``, written by :func:`bedspace.tl.train`).

    StarSpace's objective only: the default space is fitted in closed form and has no loss (a ValueError).

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train`.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """
    record = adata.uns.get(key, {})
    if "loss" not in record:
        raise KeyError(f"no training loss under adata.uns[{key!r}]: run bs.tl.train first")
    values = np.asarray(record["loss"])
    if values.size == 0:
        raise ValueError(
            f"no loss to plot under adata.uns[{key!r}]: the default space (the annotator's) is fitted in closed form, "
            "without epochs; StarSpace's objective (bs.tl.train(..., space='starspace')) has a loss per epoch"
        )
    fig, ax = new_axes(ax, size=(5, 3.5))
    ax.plot(np.arange(1, values.size + 1), values, marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{record.get('params', {}).get('loss', 'hinge')} loss")
    ax.set_title("training loss")
    return finish(ax, show=show, save=save)


def evaluation(
    table,
    *,
    metrics: dict[str, str] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """The model beside its baselines: grouped bars per field and search, with error bars over repeated runs.

    Parameters
    ----------
    table
        The DataFrame of :func:`bedspace.tl.evaluate` (one run: bars), or the result of
        :func:`bedspace.tl.evaluate_repeated` (bars at the mean, error bars ± one sd over splits and seeds).
    metrics
        Which metric to show per search; default ``{"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}``.
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """
    metrics = metrics or {"r2l": "hit@1", "l2r": "MAP", "r2r": "MAP"}
    if hasattr(table, "summary"):  # a repeated evaluation
        long = table.summary.rename(columns={"mean": "value"})
    else:
        long = table.assign(sd=np.nan)
    chosen = long[[metrics.get(s) == m for s, m in zip(long["search"], long["metric"], strict=True)]]
    if chosen.empty:
        raise ValueError(f"no rows of the table match {metrics}")
    wide = chosen.pivot_table(index=["field", "search"], columns="method", values="value", sort=False)
    spread = chosen.pivot_table(index=["field", "search"], columns="method", values="sd", sort=False, dropna=False)
    methods = list(dict.fromkeys(chosen["method"]))
    # at most 10 inches wide: a wider figure is shrunk to fit a page or a notebook, and its text with it
    fig, ax = new_axes(ax, size=(min(10.0, 1.5 + 0.3 * len(wide) * len(methods)), 4))
    width = 0.8 / len(methods)
    x = np.arange(len(wide))
    fixed = {"bedspace": "tab:blue", "starspace": "tab:cyan", "overlap": "tab:orange", "enrichment": "tab:green"}
    others = iter(plt.get_cmap("tab10").colors[4:])
    for i, method in enumerate(methods):
        colour = "0.7" if method == "random" else fixed.get(method) or next(others)
        errors = spread[method].reindex(wide.index) if method in spread.columns else None
        errors = None if errors is None or errors.isna().all() else errors.fillna(0).to_numpy()
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width, wide[method], width, yerr=errors, capsize=2,
            label=method, color=colour,
        )  # fmt: skip
    ax.set_xticks(x, [f"{f}\n{s} {metrics[s]}" for f, s in wide.index], fontsize="small")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(frameon=False, fontsize="small", ncols=len(methods), loc="upper center", bbox_to_anchor=(0.5, 1.12))
    return finish(ax, show=show, save=save)


def calibration(
    adata: ad.AnnData,
    *,
    fields: list[str] | str | None = None,
    key: str = DEFAULT,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Reliability diagram of the default annotator's probabilities (written by :func:`bedspace.tl.calibrate`).

    For the cross-fitted held-out annotations of the training collection, per field: the mean stated
    probability of the top label (x) against how often it was right (y), per confidence bin, the marker's area
    growing with the bin's sets. On the diagonal, a probability of 0.8 is right 80% of the time; below it, the
    annotator is overconfident. The legend gives each field's expected calibration error (ECE).

    Parameters
    ----------
    adata
        A collection trained and calibrated with :func:`bedspace.tl.train` (``adata.uns[key]["annotator"]``).
    fields
        Which label fields (default: all).
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """
    record = adata.uns.get(key, {}).get("annotator") if isinstance(adata.uns.get(key), dict) else None
    if record is None or not len(record.get("calibrators", {})):
        raise KeyError(
            f"no calibrated annotator under adata.uns[{key!r}]: train with bs.tl.train (calibrate=True) or run "
            "bs.tl.calibrate"
        )
    reliability = dict(record.get("reliability", {}))
    diagnostics = dict(record.get("diagnostics", {}))
    names = list(reliability) if fields is None else ([fields] if isinstance(fields, str) else list(fields))
    unknown = [f for f in names if f not in reliability]
    if unknown:
        raise KeyError(f"no reliability diagram of field(s) {unknown}; calibrated fields: {list(reliability)}")
    fig, ax = new_axes(ax, size=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    for name in names:
        bins = {k: np.asarray(v, dtype=np.float64) for k, v in dict(reliability[name]).items()}
        ece = float(np.asarray(dict(diagnostics.get(name, {})).get("ece", np.nan)))
        sizes = 20 + 200 * bins["count"] / max(bins["count"].max(), 1)
        ax.plot(bins["confidence"], bins["accuracy"], marker="", linewidth=1)
        color = ax.lines[-1].get_color()
        ax.scatter(
            bins["confidence"], bins["accuracy"], s=sizes, color=color, alpha=0.7, label=f"{name} (ECE {ece:.3f})"
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("stated probability of the top label")
    ax.set_ylabel("share right")
    ax.set_title("calibration (held-out annotations)")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return finish(ax, show=show, save=save)
