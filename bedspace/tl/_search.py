"""``bs.tl.search``: annotate a region set, find sets for a label, find similar sets."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import pandas as pd

from .._model import searchable


def search(
    adata: ad.AnnData,
    query,
    *,
    search_type: Literal["r2l", "l2r", "r2r"],
    top_k: int = 10,
    field: str | None = None,
    key: str = "bedspace",
) -> pd.DataFrame:
    """Search the joint space of a trained collection.

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train`.
    query
        For ``"r2l"`` and ``"r2r"``: a BED file path (never seen in training is the main case: it is tokenized
        onto the collection's universe), a folder or list of BED paths, a DataFrame/PyRanges of intervals, the
        name of a set of the collection, or an AnnData of sets tokenized on the same universe. A path that
        exists is always read as a file, even when a set of the collection has the same name.
        For ``"l2r"``: a label, ``"cell_class=T cell"`` or a bare value ``"T cell"`` (an error if that value
        exists in several fields; a near miss such as ``"T_cell"`` is accepted when unambiguous), or a list.
    search_type
        ``"r2l"`` region set → labels, ``"l2r"`` label → region sets, ``"r2r"`` region set → region sets.
    top_k
        Hits per query.
    field
        Only labels of this field (``"r2l"``; for ``"l2r"`` it tells which field a bare value belongs to).
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.

    Returns
    -------
    A tidy DataFrame ranked by ``score`` (raw cosine similarity, comparable across queries and searches):
    ``rank``, ``name`` (a label ``field=value`` or a set name), ``score``; for labels ``field`` and ``value``;
    for sets their ``.obs`` metadata. With several queries, a ``query`` column comes first. In ``"r2r"`` a set of
    the collection asked for by name is never its own hit (a BED file is compared with every set).

    Raises
    ------
    ValueError
        The query overlaps no region the model knows (nothing to rank); with several queries such queries are
        left out with a warning instead.

    Examples
    --------
    >>> bs.tl.search(adata, "my_peaks.bed.gz", search_type="r2l", field="organ")  # doctest: +SKIP
    >>> bs.tl.search(adata, "organ=blood", search_type="l2r", top_k=5)  # doctest: +SKIP
    """
    return searchable(adata, key).search(query, search_type=search_type, top_k=top_k, field=field)
