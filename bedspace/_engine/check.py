"""What every training run must give, whichever engine ran it: a finite vector, not zero, for all it trained.

A learning rate far too large breaks a run in two ways. Some updates overflow to ``inf`` or ``nan`` (non-finite
vectors). Others overflow only the squared norm of a row: the clip to the maximum norm then scales the row by
``max_norm / inf = 0``, and the region or label is left with a zero vector — a model that looks trained, whose
sets of those regions get zero vectors ("overlap no region the model knows", which is false). Neither happens in a
sound run: every region and label of the training examples starts from a random vector and is only moved, so an
exact zero row is the mark of the overflow. The StarSpace binary breaks the same way (its ``.tsv`` then holds
``nan`` rows, which its reader refuses, or zero rows).
"""

from __future__ import annotations

import numpy as np

from .._params import DEFAULTS


def check_training(
    region_vectors: np.ndarray,
    label_vectors: np.ndarray,
    *,
    region_counts: np.ndarray,
    label_counts: np.ndarray,
    lr: float,
    backend: str,
) -> None:
    """Refuse a diverged run: a non-finite vector, or a zero one for a region or label the examples have.

    Parameters
    ----------
    region_vectors, label_vectors
        What the engine returned (regions × dim, labels × dim).
    region_counts, label_counts
        Training examples each region and each label appears in (0: not trained, may be zero).
    lr
        The learning rate of the run, named in the error.
    backend
        ``"native"`` or ``"starspace"``, named in the error.

    Raises
    ------
    ValueError
        The run diverged: says how many vectors are broken and asks for a smaller ``lr``.
    """
    broken = []
    for what, vectors, counts in (("regions", region_vectors, region_counts), ("labels", label_vectors, label_counts)):
        trained = counts > 0
        rows = vectors[trained]
        non_finite = int((~np.isfinite(rows).all(axis=1)).sum())
        zero = int((~np.any(rows != 0, axis=1)).sum())
        if non_finite:
            broken.append(f"{non_finite:,} of the {int(trained.sum()):,} trained {what} got non-finite vectors")
        if zero:
            broken.append(f"{zero:,} of the {int(trained.sum()):,} trained {what} got a zero vector")
    if broken:
        # StarSpace writes a row for every token it trained: a missing one is read as zero too
        how = "their updates overflowed" + (
            ", or StarSpace's .tsv has no row for them" if backend == "starspace" else ""
        )
        raise ValueError(
            f"the training diverged with lr={lr:g} ({backend} backend): {'; '.join(broken)} ({how}), so sets of "
            f"those regions would get no vector; train again with a smaller lr (the default is {DEFAULTS.lr:g})"
        )
