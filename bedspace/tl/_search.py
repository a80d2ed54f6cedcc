"""``bs.tl.search``: annotate a region set, find sets for a label, find similar sets."""

from __future__ import annotations

from typing import Literal

import anndata as ad
import pandas as pd

from .._keys import DEFAULT
from ._collection import searchable


def search(
    adata: ad.AnnData,
    query,
    *,
    search_type: Literal["r2l", "l2r", "r2r"],
    top_k: int = 10,
    field: str | None = None,
    method: Literal["regions", "embedding"] | None = None,
    min_probability: float = 0.0,
    approximate: bool = False,
    obs_columns: str | list[str] | bool | None = None,
    assembly: str | None = None,
    key: str = DEFAULT,
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
        exists is always read as a file, even when a set of the collection has the same name. A string
        with ``*``, ``?`` or ``[`` that is no existing path is a glob pattern (``"peaks/*.bed.gz"``, sorted,
        ``**`` for any depth), alone or in a list. Several queries give one table with a ``query`` column: each
        file's name, or its path as given when two files share a name.
        For ``"l2r"``: a label, ``"cell_class=T cell"`` or a bare value ``"T cell"`` (an error if that value
        exists in several fields; a near miss such as ``"T_cell"`` is accepted when unambiguous), or a list.
    search_type
        ``"r2l"`` region set → labels, ``"l2r"`` label → region sets, ``"r2r"`` region set → region sets.
    top_k
        Hits per query.
    field
        Only labels of this field (``"r2l"``; for ``"l2r"`` it tells which field a bare value belongs to).
    method
        What to rank by; the default (``None``) depends on the search and the space (``_search.default_method``):
        r2l ``"regions"`` whenever the collection's annotator is at hand; l2r and r2r ``"embedding"`` in the
        default space (the annotator's: ``bs.tl.train``'s default), ``"regions"`` in StarSpace's space when the
        collection's tokens are at hand.

        ``"regions"`` uses the default annotator: per field, a kernel ridge classifier fitted on the collection's
        labelled sets predicts the labels from the query's overlap with each of them (the cosine of their region
        tokens; its strength chosen by leave-one-out), with probabilities calibrated by
        :func:`bedspace.tl.calibrate`. ``"r2l"`` lists those labels; ``"l2r"`` ranks the collection's sets by that
        probability (or score) for the label, each set annotated from the other sets (computed for all sets on
        the first such search, then kept); ``"r2r"`` ranks the sets by the cosine of their vectors plus 0.5 × the
        probability that the query carries the set's labels, averaged over the label fields (a set without a
        label in a field counts as one of the base rates; this needs the calibrated probabilities).
        ``"embedding"``: cosine similarity of the set vectors to the label vectors (``"r2l"``, ``"l2r"``) or to
        the query's vector (``"r2r"``): one product with a vector per set, milliseconds on any number of sets.
        In the default space a label vector is the axis of the annotator's score of it, and a set vector holds
        its scores field by field and a block of its regions: sets of the query's labels come first, the most
        alike in regions among them.
    min_probability
        ``"r2l"`` with probabilities: leave out labels less probable than this (a query may get no label: it
        abstains).
    approximate
        ``"r2r"`` and ``"l2r"``, with ``method="embedding"``: take the candidate sets from an approximate
        nearest-neighbour index of the set vectors (an inverted file of k-means cells) instead of comparing the
        query with every set. The scores are still exact cosines; only which sets are found is approximate:
        recall@10 against exact search was 1.000 on clustered set vectors from 10⁴ to 10⁶ sets, and 0.27 on pure
        random vectors (no neighbour structure: the worst case) at 10⁵. The index is built on the first such
        search and kept with the collection's model (not saved in model folders): 0.2 s for 10⁴ sets, 0.6 s for
        10⁵, 7 s for 10⁶ on 2 cores. Then a query costs 0.2–0.8 ms instead of 4–60 ms for the exact product. It
        pays when one process answers many queries over a large collection: the build is repaid after about 40
        one-query searches at 10⁴ sets, 80 at 10⁵ and 120 at 10⁶ (``benchmarks/index.py``); for fewer, exact
        search is faster overall, and ``approximate=True`` still builds the index. ``True`` with ``"r2l"`` or
        with ``method="regions"`` (the default of ``"l2r"`` and ``"r2r"`` in StarSpace's space) is an error.
    obs_columns
        ``"l2r"`` and ``"r2r"``: which columns of the sets' ``.obs`` follow the table's own. By default (``None``)
        the label fields the collection was trained on (``labels`` of :func:`~bedspace.tl.train`, e.g. ``organ``,
        ``cell_class``, ``assay``), in that order. A column name or a list of names adds those columns after the
        label fields (``obs_columns=["lab", "treatment"]``); ``"all"`` (or ``True``) shows every ``.obs`` column,
        in ``.obs``'s order; ``False`` none. An unknown name is a :class:`KeyError` listing the columns there are;
        any value with ``"r2l"`` (a table of labels, which have no ``.obs``) is an error.
    assembly
        ``"r2l"`` and ``"r2r"``: the genome build of the query's coordinates (``"hg38"``, ``"GRCh38"``…). When it
        is not the collection's (recorded by :func:`~bedspace.pp.tokenize` in
        ``adata.uns["bedspace"]["universe"]["assembly"]``), the query's BED files and frames are lifted onto the
        collection's build first (:func:`bedspace.pp.liftover`'s rule; how many regions were lifted and dropped is
        logged, and a query losing more than 5% gets a warning). ``None`` (the default): the query is taken to be
        on the collection's build; when it lies in the universe poorly and looks like another build (far more of
        a sample of its regions lands in the universe once lifted from it), a warning says which build and how to
        lift it.
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.

    Returns
    -------
    A tidy DataFrame; with several queries a ``query`` column comes first.

    * ``"r2l"``, ``method="regions"``: per query and field, ``field``, ``rank`` (within the field), ``name``
      (``field=value``), ``value``, ``probability`` (calibrated: of the answers given with probability 0.8,
      about 80% are right; absent when the collection was trained with ``calibrate=False``), ``score`` (the
      classifier's score), ``in_domain`` (``False``: the query is unlike every collection set — few of its regions in
      the universe, or no more shared regions than chance. The annotator then abstains, with a warning: the
      probability is ``nan``, no label passes ``min_probability``, and the labels are ranked by enrichment, whose
      score the ``score`` column then holds: minus the rank of the label's best set by its enrichment p-value).
    * ``"l2r"``: ``rank``, ``name`` (a set), ``score`` (the set's classifier score for the label from the other
      sets, or with ``method="embedding"`` the cosine similarity), ``probability`` (its calibrated probability of
      the label; absent when uncalibrated and with ``method="embedding"``), ``has_label`` (whether the set carries
      the label: those come first), then the sets' label fields (and the ``obs_columns`` asked for).
    * ``"r2r"``, ``method="regions"``: ``rank``, ``name`` (a set), ``score`` (``cosine + 0.5 × shared_labels``),
      ``cosine`` (of the set vectors), ``shared_labels`` (the probability that the query carries the set's
      labels, mean over the fields), then the sets' label fields (and the ``obs_columns`` asked for); a query
      unlike every collection set gets a warning (no label is favoured: its ``shared_labels`` are the base rates).
    * ``"r2l"`` and ``"r2r"`` with ``method="embedding"``: ranked by ``score`` (raw cosine similarity,
      comparable across queries and searches): ``rank``, ``name`` (a label or a set name), ``score``; for labels
      ``field`` and ``value``; for sets their label fields (and the ``obs_columns`` asked for).

    In ``"r2r"`` a set of the collection asked for by name is never its own hit (a BED file is compared with
    every set); in ``"r2l"`` (``"regions"``) it is annotated from the other sets.

    Raises
    ------
    ValueError
        The query overlaps no region the model knows (nothing to rank); with several queries such queries are
        left out with a warning instead. ``approximate=True`` with ``"r2l"`` or with ``method="regions"``;
        ``method="regions"`` in ``"r2r"`` on a collection trained with ``calibrate=False``. ``obs_columns`` with
        ``"r2l"``, or naming a column of the table's own (``score``…).
        ``assembly`` not a build bedspace can lift (no chain file), a collection whose build is not recorded, or
        ``assembly`` with ``"l2r"`` or an AnnData query.
    KeyError
        ``obs_columns`` names a column the sets' ``.obs`` does not have (the message lists those it has).

    Examples
    --------
    >>> bs.tl.search(adata, "my_peaks.bed.gz", search_type="r2l", field="organ")  # doctest: +SKIP
    >>> bs.tl.search(adata, "organ=blood", search_type="l2r", top_k=5)  # doctest: +SKIP
    >>> bs.tl.search(adata, "organ=blood", search_type="l2r", obs_columns=["lab", "treatment"])  # doctest: +SKIP
    >>> bs.tl.search(adata, "my_peaks.bed.gz", search_type="r2r")  # doctest: +SKIP
    >>> bs.tl.search(adata, "my_peaks.bed.gz", search_type="r2r", method="embedding", approximate=True)  # doctest: +SKIP
    """
    return searchable(adata, key).search(
        query,
        search_type=search_type,
        top_k=top_k,
        field=field,
        method=method,
        min_probability=min_probability,
        approximate=approximate,
        obs_columns=obs_columns,
        assembly=assembly,
    )
