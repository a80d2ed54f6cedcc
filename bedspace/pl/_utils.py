"""What every ``bs.pl`` function shares: an Axes to draw into, showing or saving the figure, colours, labels."""

from __future__ import annotations

import os
from collections.abc import Sequence

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.colors import is_color_like, to_hex
from matplotlib.figure import Figure

from .._logging import added

#: Longest text of a tick label or a name drawn on the data; longer ones end in "…".
LONGEST_NAME = 32


def new_axes(ax: Axes | None, *, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """The given Axes and its figure, or a new figure of ``size`` inches (capped to stay readable)."""
    if ax is not None:
        return ax.figure, ax
    width, height = min(size[0], 20), min(size[1], 30)
    fig, ax = plt.subplots(figsize=(max(width, 4), max(height, 3)), layout="constrained")
    return fig, ax


def finish(ax: Axes, *, show: bool | None, save: str | os.PathLike | None) -> Axes:
    """Save to ``save`` and show (default: in an interactive session), scanpy style; return the Axes."""
    if save is not None:
        ax.figure.savefig(save, dpi=150, bbox_inches="tight")
    if show is None:
        show = plt.isinteractive() and ax.figure.canvas.manager is not None
    if show:
        plt.show()
    return ax


def short(text: str, longest: int = LONGEST_NAME) -> str:
    """``text``, or its start and "…" when it is longer than ``longest`` characters."""
    return text if len(text) <= longest else text[: longest - 1] + "…"


# -- colours of categories, as scanpy chooses and stores them ---------------------------------------------------
def default_colours(n: int) -> list[str]:
    """The default colours of scanpy for ``n`` categories (``set_default_colors_for_categorical_obs``), as hex.

    matplotlib's colour cycle when it has enough colours (tab10: blue, orange, green, ...), else scanpy's palettes
    of 20, 28 and 102 clearly different colours, else grey.
    """
    from scanpy.plotting import palettes

    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", [])
    if len(cycle) >= n:
        chosen = list(cycle[:n])
    elif n <= 20:
        chosen = palettes.default_20[:n]
    elif n <= 28:
        chosen = palettes.default_28[:n]
    elif n <= len(palettes.default_102):
        chosen = palettes.default_102[:n]
    else:
        chosen = ["grey"] * n
    return [to_hex(c) for c in chosen]


def categories_of(adata: ad.AnnData, column: str) -> pd.Categorical:
    """The values of ``adata.obs[column]`` as scanpy's plots see them (booleans as ``"False"``, ``"True"``)."""
    values = adata.obs[column]
    if values.dtype == bool:
        return pd.Categorical(values.astype(str), categories=["False", "True"])
    return pd.Categorical(values)


def category_colours(adata: ad.AnnData, column: str) -> dict[str, str]:
    """Colour of each category of ``adata.obs[column]``, kept in ``adata.uns[column + "_colors"]`` as scanpy does.

    Valid stored colours are kept (more than there are categories: the first ones, as scanpy draws them); missing,
    too few or invalid ones are replaced by scanpy's defaults (:func:`default_colours`), so that a later
    ``sc.pl.embedding(adata, color=column)`` draws the same colours.
    """
    categories = list(categories_of(adata, column).categories)
    key = f"{column}_colors"
    stored = adata.uns.get(key)
    stored = [] if stored is None else [str(c) for c in np.atleast_1d(np.asarray(stored, dtype=object))]
    if len(stored) >= len(categories) and all(is_color_like(c) for c in stored[: len(categories)]):
        colours = stored[: len(categories)]
    else:
        colours = default_colours(len(categories))
    if colours != stored:
        adata.uns[key] = colours
        added(key, f"colours of the categories of {column!r}", "uns")
    return dict(zip(map(str, categories), colours, strict=True))


# -- names drawn on the data without covering each other ------------------------------------------------------
#: Distances (points) from its point at which a name is tried, and the directions (degrees), nearest first.
_RADII = (4, 9, 15, 22, 30, 40, 52, 66, 82, 100, 125, 155, 190, 230)
_ANGLES = (0, 180, 90, 270, 30, 150, 210, 330, 60, 120, 240, 300)
#: What a place costs beside its distance (points): covering a name or a marker, leaving the axes, a joining
#: line through a name, marker or line, and each data point hidden.
_COVERS, _OUTSIDE, _CROSSING, _HIDDEN = 10_000, 20_000, 300, 4
#: A name farther than this (points) from its point is joined to it by a line.
_JOINED = 12
_SAMPLES = np.linspace(0.05, 0.95, 24)


def _hits(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each box (n × 4: x0, y0, x1, y1), whether it overlaps any of ``others`` (m × 4)."""
    if not len(others):
        return np.zeros(len(boxes), bool)
    a, b = boxes[:, None], others[None]
    return ((a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2]) & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])).any(
        1
    )


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether each point lies in each box: points × boxes."""
    x, y = points[:, 0, None], points[:, 1, None]
    return (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])


def _along(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Points sampled along each segment: segments × samples × 2."""
    return starts[:, None] + _SAMPLES[None, :, None] * (ends - starts)[:, None]


def _cross(starts: np.ndarray, ends: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each segment, whether it crosses any of ``others`` (m × 4: x0, y0, x1, y1)."""
    if not len(others):
        return np.zeros(len(starts), bool)
    a, b = starts[:, None], ends[:, None]
    c, d = others[None, :, :2], others[None, :, 2:]

    def side(p, q, r):
        return np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    return ((side(a, b, c) * side(a, b, d) < 0) & (side(c, d, a) * side(c, d, b) < 0)).any(axis=1)


def place_names(
    ax: Axes,
    xy: np.ndarray,
    names: Sequence[str],
    *,
    points: np.ndarray | None = None,
    fontsize: float = 8,
    marker_size: float = 9,
) -> list:
    """Write each name next to its point (data coordinates), no name covering another name or a marker.

    Each name takes, among the places around its point inside the axes, the one that covers no other name or
    marker, is nearest and hides the fewest of ``points`` (what is drawn beneath); a name placed away from its
    point is joined to it by a thin line, crossing no name, marker or other line where there is room. Crowded
    names are placed first, then every name is placed again among the others' places until none moves. Offsets
    are in points, so they hold when the figure is saved at another dpi. Returns the text artists.
    """
    fig = ax.figure
    fig.draw_without_rendering()  # the layout settles the axes' place and size
    renderer = fig.canvas.get_renderer()
    scale = 72 / fig.dpi  # display pixels → points
    frame = ax.get_window_extent(renderer)
    frame = np.array([frame.x0, frame.y0, frame.x1, frame.y1]) * scale
    anchors = ax.transData.transform(np.asarray(xy, dtype=float).reshape(-1, 2)) * scale
    below = np.empty((0, 2)) if points is None else ax.transData.transform(np.asarray(points, dtype=float)) * scale
    markers = np.column_stack([anchors - marker_size / 2, anchors + marker_size / 2])
    sizes = []
    for name in names:
        probe = ax.text(0, 0, name, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width * scale + 2, extent.height * scale + 1))
        probe.remove()
    radius = np.repeat(_RADII, len(_ANGLES)).astype(float)
    angle = np.deg2rad(np.tile(_ANGLES, len(_RADII)))
    dx, dy = np.round(radius * np.cos(angle), 6), np.round(radius * np.sin(angle), 6)
    joined = radius > _JOINED
    n = len(names)
    # every candidate place of every name, computed once: its box, the centre its line goes to, its fixed cost
    boxes, centres, fixed = [], [], []
    for i in range(n):
        width, height = sizes[i]
        x0 = anchors[i, 0] + dx - np.where(dx < 0, width, np.where(dx > 0, 0, width / 2))
        y0 = anchors[i, 1] + dy - np.where(dy < 0, height, np.where(dy > 0, 0, height / 2))
        box = np.column_stack([x0, y0, x0 + width, y0 + height])
        centre = box.reshape(-1, 2, 2).mean(axis=1)
        others = np.delete(markers, i, axis=0)
        outside = (box[:, 0] < frame[0]) | (box[:, 1] < frame[1]) | (box[:, 2] > frame[2]) | (box[:, 3] > frame[3])
        through = np.zeros(len(box), bool)
        if len(others):
            through = joined & _inside(
                _along(np.broadcast_to(anchors[i], centre.shape), centre).reshape(-1, 2), others
            ).reshape(len(box), -1).any(axis=1)
        hidden = _inside(below, box).sum(axis=0) if len(below) else np.zeros(len(box))
        cost = _COVERS * _hits(box, others) + _OUTSIDE * outside + _CROSSING * through + radius + _HIDDEN * hidden
        boxes.append(box)
        centres.append(centre)
        fixed.append(cost)
    chosen = np.full(n, -1)

    def best(i: int) -> int:
        placed = [j for j in range(n) if j != i and chosen[j] >= 0]
        cost = fixed[i].copy()
        if placed:
            taken = np.array([boxes[j][chosen[j]] for j in placed])
            cost += _COVERS * _hits(boxes[i], taken)
            lines = np.array([[*anchors[j], *centres[j][chosen[j]]] for j in placed if joined[chosen[j]]]).reshape(
                -1, 4
            )
            start = np.broadcast_to(anchors[i], centres[i].shape)
            crossing = joined & _inside(_along(start, centres[i]).reshape(-1, 2), taken).reshape(len(cost), -1).any(1)
            if len(lines):
                crossing |= joined & _cross(start, centres[i], lines)
                # a name over another's joining line
                crossing |= _inside(_along(lines[:, :2], lines[:, 2:]).reshape(-1, 2), boxes[i]).any(axis=0)
            cost += _CROSSING * crossing
        return int(np.argmin(cost))

    crowding = (np.linalg.norm(anchors[:, None] - anchors[None], axis=-1) < 40).sum(axis=1)
    for i in np.argsort(-crowding, kind="stable"):
        chosen[i] = best(i)
    for _ in range(5):  # place each again among the others until none moves
        moved = False
        for i in np.argsort(-crowding, kind="stable"):
            again = best(i)
            moved |= again != chosen[i]
            chosen[i] = again
        if not moved:
            break
    texts = []
    for i in range(n):
        k = chosen[i]
        texts.append(
            ax.annotate(
                names[i],
                tuple(np.asarray(xy[i], dtype=float)),
                xytext=(dx[k], dy[k]),
                textcoords="offset points",
                ha="left" if dx[k] > 0 else "right" if dx[k] < 0 else "center",
                va="bottom" if dy[k] > 0 else "top" if dy[k] < 0 else "center",
                fontsize=fontsize,
                zorder=5,
                arrowprops={"arrowstyle": "-", "color": "0.3", "linewidth": 0.6, "shrinkA": 1, "shrinkB": 3}
                if joined[k]
                else None,
                path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
            )  # fmt: skip
        )
    return texts


def spread(centres: np.ndarray, gap: float, low: float, high: float) -> np.ndarray:
    """Positions as near as possible to the increasing ``centres`` (least squares), ``gap`` apart, in [low, high]."""
    centres = np.asarray(centres, dtype=float)
    n = centres.size
    if n == 0:
        return centres
    gap = min(gap, (high - low) / max(n - 1, 1))
    steps = gap * np.arange(n)
    # with q = p - steps the gaps are q non-decreasing: isotonic regression of centres - steps (pool adjacent)
    target = centres - steps
    blocks: list[list[float]] = []  # [mean, weight]
    for value in target:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, weight = blocks.pop()
            blocks[-1] = [
                (blocks[-1][0] * blocks[-1][1] + mean * weight) / (blocks[-1][1] + weight),
                blocks[-1][1] + weight,
            ]
    q = np.concatenate([np.full(int(w), m) for m, w in blocks])
    positions = q + steps
    positions = np.maximum(positions, low + steps)
    return np.minimum(positions, high - steps[::-1])
