"""``bs.pl``: the joint map of sets and labels, search results, training loss, evaluation."""

from __future__ import annotations

import os
from typing import Literal

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._keys import DEFAULT, Keys
from ._utils import finish, new_axes


def _palette(adata: ad.AnnData | None, column: str, categories: list[str]) -> dict[str, str]:
    """Colours for categories: scanpy's ``uns[column + '_colors']`` when present, else tab20."""
    stored = None if adata is None else adata.uns.get(f"{column}_colors")
    if stored is not None and len(stored) >= len(categories):
        return dict(zip(categories, stored, strict=False))
    cmap = plt.get_cmap("tab20")
    return {c: cmap(i % 20) for i, c in enumerate(categories)}


def embedding(
    adata: ad.AnnData,
    *,
    color: str | None = None,
    labels: bool | str = True,
    basis: Literal["umap", "pca"] = "umap",
    key: str = DEFAULT,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """The joint picture: region sets and labels in one 2-D map of the shared space.

    Draws what :func:`bedspace.tl.layout` computed (``.obsm["X_" + key + "_" + basis]`` for the sets and
    ``.uns[key + "_" + basis]`` for the labels): run it first.

    Parameters
    ----------
    adata
        A collection laid out with :func:`bedspace.tl.layout`.
    color
        ``.obs`` column to colour the sets by (categorical: a legend; numeric: a colour bar).
    labels
        ``True``: every label, marked and named; a field name: only that field's labels; ``False``: none.
    basis
        ``"umap"`` or ``"pca"``: which layout to draw.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """
    name = Keys(key).layout(basis)
    placed = adata.uns.get(name.removeprefix("X_"))
    if name not in adata.obsm or placed is None:
        raise KeyError(f"no {basis} layout under key {key!r}: run bs.tl.layout(adata, basis={basis!r}) first")
    sets_xy = np.asarray(adata.obsm[name])
    names = pd.Index(np.asarray(placed["labels"]).astype(str))
    labels_xy = np.asarray(placed["label_coordinates"]).reshape(len(names), 2)
    fields = np.array([n.split("=", 1)[0] for n in names])
    keep = np.ones(len(names), bool)
    if isinstance(labels, str):
        keep = fields == labels
        if not keep.any():
            raise KeyError(f"no labels of field {labels!r}; fields are {sorted(set(fields))}")
    elif not labels:
        keep[:] = False
    names, labels_xy = names[keep], labels_xy[keep]

    fig, ax = new_axes(ax, size=(7, 6))
    if color is None:
        ax.scatter(*sets_xy.T, s=18, c="0.6", label="region sets", linewidths=0)
    elif color not in adata.obs.columns:
        raise KeyError(f"no column {color!r} in .obs; available: {list(adata.obs.columns)}")
    elif pd.api.types.is_numeric_dtype(adata.obs[color]) and not isinstance(
        adata.obs[color].dtype, pd.CategoricalDtype
    ):
        dots = ax.scatter(*sets_xy.T, s=18, c=adata.obs[color].to_numpy(), cmap="viridis", linewidths=0)
        fig.colorbar(dots, ax=ax, shrink=0.6, label=color)
    else:
        values = adata.obs[color].astype("category")
        colours = _palette(adata, color, list(values.cat.categories))
        for category in values.cat.categories:
            mask = (values == category).to_numpy()
            ax.scatter(*sets_xy[mask].T, s=18, color=colours[category], label=str(category), linewidths=0)
        ax.legend(title=color, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize="small")
    if len(names):
        ax.scatter(*labels_xy.T, s=60, marker="D", c="black", edgecolors="white", linewidths=0.8, zorder=3)
        for (x, y), label in zip(labels_xy, names, strict=True):
            ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize="x-small", zorder=4)
    ax.set_xlabel(f"{basis.upper()} 1")
    ax.set_ylabel(f"{basis.upper()} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("region sets (points) and labels (diamonds) in one space")
    return finish(ax, show=show, save=save)


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
    measure = "probability" if "probability" in result.columns else "score"
    if color is None:
        ax.barh(y, result[measure], color="0.4")
    else:
        values = result[color].astype(str)
        colours = _palette(None, color, list(dict.fromkeys(values)))
        ax.barh(y, result[measure], color=[colours[v] for v in values])
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
        ax.legend(handles, colours.keys(), title=color, loc="lower right", fontsize="small", frameon=False)
    ax.set_yticks(y, result["name"].astype(str))
    ax.axvline(0, color="black", linewidth=0.6)
    if measure == "probability":
        ax.set_xlabel("probability")
        ax.set_xlim(0, 1)
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
    fig, ax = new_axes(ax, size=(1.5 + 0.3 * len(wide) * len(methods), 4))
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
