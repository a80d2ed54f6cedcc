"""What every ``bs.pl`` function shares: an Axes to draw into, and showing or saving the figure."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure


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
