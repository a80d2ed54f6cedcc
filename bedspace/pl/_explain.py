"""``bs.pl.explain``: the regions (or reference sets) that make a query's label, as bars."""

from __future__ import annotations

import os
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from ._utils import finish, new_axes, short

#: The colour map of the regions' bars: how many of the reference sets carrying a region are the label's.
REGION_COLOURS = "viridis_r"


def explain(
    explanation,
    *,
    label: str | None = None,
    kind: Literal["regions", "sets"] = "regions",
    n: int = 20,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Why a query got a label: its top regions (or reference sets) and their part of the label's score.

    Draws an explanation of :func:`bedspace.tl.explain`. ``kind="regions"``: one bar per region, largest
    contribution at the top, named by its position (``chr1:4,615,685-4,616,095``) and the reference sets carrying
    it (``in 2 liver, 3 other sets``: sets of the label, and of the field's other labels); the bar's colour is the share
    of those sets that carry the label (a region found in the label's sets only is dark). ``kind="sets"``: one
    bar per reference set among the ``n`` weighing most either way, largest weight at the top, named by the set
    and its label in the field, blue when it carries the label, grey otherwise (negative weights: sets whose
    overlap with the query argues against the label). The title gives the score as baseline + the regions' part,
    and how much of that the regions shown make (or what the sets for and against the label weigh in all).

    Parameters
    ----------
    explanation
        An explanation from :func:`bedspace.tl.explain` (or :meth:`BEDSpaceModel.explain <bedspace.BEDSpaceModel.explain>`).
    label
        Which explained label to draw (``"organ=liver"``); default: its first.
    kind
        ``"regions"`` or ``"sets"``.
    n
        Bars drawn (the explanation's first ``n`` rows for the label).
    ax, show, save
        Draw into ``ax``; show (default: in an interactive session); save to this path.

    Returns
    -------
    The Axes.
    """  # fmt: skip
    if kind not in ("regions", "sets"):
        raise ValueError(f"kind must be 'regions' or 'sets', got {kind!r}")
    if not (isinstance(n, int | np.integer) and n >= 1):
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    summary = explanation.labels
    names = summary["label"].tolist()
    label = names[0] if label is None else str(label)
    if label not in names:
        raise KeyError(f"the explanation has no label {label!r}; it explains {names}")
    entry = summary[summary["label"] == label].iloc[0]
    field, value = str(entry["field"]), str(entry["value"])
    table = getattr(explanation, kind)
    table = table[table["label"] == label]
    everything = table
    if kind == "sets":  # the sets weighing most either way, by weight
        table = table.loc[table["weight"].abs().sort_values(ascending=False, kind="stable").index[:n]]
        table = table.sort_values("weight", ascending=False, kind="stable")
    else:
        table = table.head(n)
    fig, ax = new_axes(ax, size=(8, 1.2 + 0.28 * max(len(table), 3)))
    y = np.arange(len(table))[::-1]
    if kind == "regions":
        carried = (table["n_label_sets"] + table["n_other_sets"]).to_numpy()
        own = np.divide(table["n_label_sets"].to_numpy(), carried, out=np.zeros(len(table)), where=carried > 0)
        colours = plt.get_cmap(REGION_COLOURS)(Normalize(0, 1)(own))
        ax.barh(y, table["contribution"], color=colours)
        ticks = [
            f"{c}:{s:,}-{e:,}  (in {a} {short(value, 16)}, {b} other sets)"
            for c, s, e, a, b in zip(
                table["chrom"], table["start"], table["end"], table["n_label_sets"], table["n_other_sets"],
                strict=True,
            )
        ]  # fmt: skip
        bar = fig.colorbar(plt.cm.ScalarMappable(Normalize(0, 1), REGION_COLOURS), ax=ax, fraction=0.04, pad=0.02)
        bar.set_label(f"share of the sets carrying the region that are {short(value, 24)}")
        ax.set_xlabel(f"contribution to the score of {short(label, 40)}")
        measure = table["contribution"]
    else:
        colours = np.where(table["has_label"].to_numpy(bool), "tab:blue", "0.6")
        ax.barh(y, table["weight"], color=colours)
        labelled = table[field].astype(str) if field in table.columns else [""] * len(table)
        ticks = [f"{short(s, 40)}  ({short(v, 20)})" for s, v in zip(table["name"], labelled, strict=True)]
        ax.legend(
            handles=[plt.Rectangle((0, 0), 1, 1, color="tab:blue"), plt.Rectangle((0, 0), 1, 1, color="0.6")],
            labels=[f"carries {short(value, 24)}", "another label"],
            loc="lower right", fontsize="small", frameon=False,
        )  # fmt: skip
        ax.set_xlabel(f"weight in the score of {short(label, 40)} (overlap × dual weight)")
        measure = table["weight"]
    ax.set_yticks(y, ticks, fontsize="small")
    ax.axvline(0, color="black", linewidth=0.6)
    # a region's part of a score is 1e-4 or so: four ticks in e-notation keep the labels apart and readable
    ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: "0" if value == 0 else f"{value:.1e}"))
    part = float(entry["from_regions"])
    if kind == "sets":
        weights = everything["weight"]
        shown = f"\n{(weights > 0).sum()} sets weigh for it (+{weights[weights > 0].sum():.3f}), "
        shown += f"{(weights < 0).sum()} against ({weights[weights < 0].sum():.3f})"
    else:
        shown = f"; these {len(table)} make {100 * measure.sum() / part:.2g}% of it" if part else ""
    probability = f", probability {entry['probability']:.2f}" if "probability" in summary.columns else ""
    ax.set_title(
        f"{short(explanation.query, 48)}: {short(label, 40)}\nscore {entry['score']:.3f}{probability} = baseline "
        f"{entry['baseline']:.3f} + {part:.3f} from {int(entry['n_regions']):,} regions{shown}",
        fontsize="medium",
    )
    return finish(ax, show=show, save=save)
