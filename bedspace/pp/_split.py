"""``bs.pp.split``: a held-out split of a collection, stratified by a column or drawn at random."""

from __future__ import annotations

import anndata as ad
import numpy as np


def split(
    adata: ad.AnnData, *, stratify: str | None = None, test_size: float = 0.25, random_state: int = 0
) -> tuple[ad.AnnData, ad.AnnData]:
    """Split sets into training and held-out parts, at random or keeping each value of ``stratify`` in proportion.

    Parameters
    ----------
    adata
        A tokenized collection.
    stratify
        ``.obs`` column whose values are spread over both parts. From each value, ``round(test_size × n)``
        sets (at least one) are held out; a value with a single set stays in training, so that every held-out
        label was seen in training. Sets with a missing value stay in training.

        ``None``: ``round(test_size × n_obs)`` sets drawn at random, like new experiments from the collection's
        source; a small label may then be held out whole (:func:`bedspace.tl.evaluate` leaves such sets out of
        r2l). A stratified split holds out a set of every label and keeps all its other sets in training: fair to
        small labels when comparing methods, but those held-out sets have more label-mates in training than a
        new experiment of their label has on average, and are right more often than the calibrated
        probabilities (fitted for the collection's own mix) promise.
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
        Nothing can be held out: no value of ``stratify`` has two sets, or the collection has fewer than two.
    """
    if stratify is not None and stratify not in adata.obs.columns:
        raise KeyError(f"no column {stratify!r} in .obs; available: {list(adata.obs.columns)}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    rng = np.random.default_rng(random_state)
    held_out = np.zeros(adata.n_obs, bool)
    if stratify is None:
        n = min(adata.n_obs - 1, max(1, round(test_size * adata.n_obs)))
        if n < 1:
            raise ValueError(f"nothing to hold out: the collection has {adata.n_obs} set(s), fewer than two")
        held_out[rng.choice(adata.n_obs, n, replace=False)] = True
        return adata[~held_out].copy(), adata[held_out].copy()
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
