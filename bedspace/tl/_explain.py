"""``bs.tl.explain``: which regions of a query, and which reference sets, make its label's score."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad

from .._explain import Explanation
from .._keys import DEFAULT
from ._collection import searchable


def explain(
    adata: ad.AnnData,
    query,
    *,
    label: str | Sequence[str] | None = None,
    field: str | None = None,
    top_k: int | None = 100,
    assembly: str | None = None,
    key: str = DEFAULT,
) -> Explanation:
    """Why a query got a label: its score split over the query's regions and the reference sets.

    The default annotator (r2l, ``method="regions"``) scores a label with a kernel ridge classifier on the token
    cosine between the query and each fitted reference set: a weighted sum of the regions the query shares with
    each set, over the geometric mean of the two sets' sizes. So the score splits exactly::

        score = baseline + Σ_regions contribution = baseline + Σ_sets weight

    A region's ``contribution`` is the sum, over the reference sets that carry it, of each set's dual weight for
    the label (positive for the label's sets, negative for the others: a region carried by liver sets and not
    by blood sets is evidence for liver) over ``sqrt(|query| · |set|)``, times the label's balancing weight and
    the query's lift (its overlaps scaled up when its best match is weaker than the sets' typical best match). A
    set's ``weight`` is its overlap with the query times its dual weight. ``baseline`` is the part no region
    makes (intercept and centring). The sum is exact to float; it is a decomposition at the query as it is, not
    Shapley values: removing regions also changes the query's size and lift, so the score drops by about, not
    exactly, their contributions (``benchmarks/explain.py``: removing a query's 100 top regions lowers its top
    label's score far more than removing 100 random ones). A set of the collection asked for by name is
    annotated from the other sets (as r2l does): it is explained by the classifier fitted without it. The
    calibration maps scores to probabilities afterwards and is not decomposed; a model trained with
    ``calibrate=False`` is explained all the same (its scores).

    Nothing is written into ``adata``: an explanation is of one query, like a search's table.

    Parameters
    ----------
    adata
        A collection trained with :func:`bedspace.tl.train` (its tokens at hand: the default annotator).
    query
        One query, any form r2l takes (:func:`bedspace.tl.search`): a BED file (seen in training or not), a
        DataFrame/PyRanges of intervals, the name of a set of the collection, a one-set AnnData on the same
        universe, a folder or pattern matching one file.
    label
        The label(s) to explain: ``"organ=liver"``, a bare value (``"liver"``, resolved as in l2r) or a list.
        Default: the query's top r2l label of each field (by probability; by score when uncalibrated), or of
        ``field`` alone.
    field
        Only this field's top label (with ``label=None``), or the field a bare value of ``label`` belongs to.
    top_k
        Regions listed per label, by contribution (largest first); ``None``: every region of the query in the
        universe.
    assembly
        The genome build of a query file's or frame's coordinates, when it is not the collection's: lifted onto
        it first, as :func:`bedspace.tl.search` does. The regions listed are the collection's universe regions,
        in its build.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.

    Returns
    -------
    An :class:`~bedspace._explain.Explanation` with three tidy tables, each with ``field`` and ``label`` columns:

    * ``labels``: one row per label: ``score`` (as r2l reports it), ``probability`` (when calibrated),
      ``baseline``, ``from_regions`` (``score - baseline``), ``lift``, ``left_out`` (a stored set explained from
      the others), ``n_regions`` (the query's universe regions), ``n_positive`` (with a positive contribution).
    * ``regions``: ``rank``, ``chrom``, ``start``, ``end`` (the universe region), ``contribution``, ``share`` (of
      ``from_regions``), ``n_label_sets`` and ``n_other_sets`` (the reference sets of the label, and of the
      field's other labels, carrying the region).
    * ``sets``: the fitted reference sets sharing a region with the query, by weight: ``rank``, ``name``,
      ``weight``, ``share``, ``shared_regions``, ``has_label``, then the sets' label fields.

    ``explanation.write_bed(path)`` writes the listed regions with a positive contribution as BED6, by position,
    their score 0–1000 by contribution (atomically; an existing file only with ``overwrite=True`` and only an
    earlier explanation's). :func:`bedspace.pl.explain` draws it. Takes well under a second for a BED file
    against the hg19 collection; the first stored set of a collection also compares the fitted sets with each
    other once (seconds), kept for the next.

    Raises
    ------
    KeyError
        An unknown label (the message names it and the labels of its field) or field.
    ValueError
        More than one query; a query sharing no region with the universe; a label no fitted set carries; a
        collection without its tokens (no default annotator).

    Examples
    --------
    >>> why = bs.tl.explain(adata, "my_peaks.bed.gz", label="organ=liver")  # doctest: +SKIP
    >>> why.regions.head()  # doctest: +SKIP
    >>> why.write_bed("liver_evidence.bed")  # doctest: +SKIP
    >>> bs.pl.explain(why)  # doctest: +SKIP
    """
    return searchable(adata, key).explain(query, label=label, field=field, top_k=top_k, assembly=assembly)
