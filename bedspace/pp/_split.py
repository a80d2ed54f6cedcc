"""``bs.pp.split``: a stratified held-out split of a collection."""

from __future__ import annotations

import anndata as ad
import numpy as np


def split(
    adata: ad.AnnData, *, stratify: str, test_size: float = 0.25, random_state: int = 0
) -> tuple[ad.AnnData, ad.AnnData]:
    """Split sets into training and held-out parts, keeping each value of ``stratify`` in proportion.

    Parameters
    ----------
    adata
        A tokenized collection.
    stratify
        ``.obs`` column whose values are spread over both parts. From each value, ``round(test_size × n)``
        sets (at least one) are held out; a value with a single set stays in training, so that every held-out
        label was seen in training. Sets with a missing value stay in training.
    test_size
        Fraction held out, between 0 and 1.
    random_state
        Seed.

    Returns
    -------
    ``(train, test)``: two new AnnData objects (copies).

    Raises
    ------
    ValueError
        No value of ``stratify`` has two sets (nothing can be held out).
    """
    if stratify not in adata.obs.columns:
        raise KeyError(f"no column {stratify!r} in .obs; available: {list(adata.obs.columns)}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    rng = np.random.default_rng(random_state)
    held_out = np.zeros(adata.n_obs, bool)
    groups = adata.obs.groupby(adata.obs[stratify], observed=True, sort=True).indices
    for rows in groups.values():
        if len(rows) < 2:
            continue
        n = min(len(rows) - 1, max(1, round(test_size * len(rows))))
        held_out[rng.choice(rows, n, replace=False)] = True
    if not held_out.any():
        raise ValueError(
            f"nothing to hold out: no value of {stratify!r} has two or more sets, and a value's only set stays in "
            "training"
        )
    return adata[~held_out].copy(), adata[held_out].copy()
