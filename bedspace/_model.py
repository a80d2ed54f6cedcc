"""``BEDSpaceModel``: the trained embedding — universe, labels, region and label vectors — and its collection.

The model keeps the embedding, as gensim keeps ``KeyedVectors`` apart from the trainer: it embeds new region
sets and converts to and from a trained AnnData. Everything else it delegates: its reference collection (set
names, metadata, vectors, tokens) and that collection's annotator are :class:`~bedspace._reference.ReferenceSets`;
the searches are :mod:`bedspace._search`; model folders are :mod:`bedspace._folder`; StarSpace's files are
:mod:`bedspace._formats.starspace`.

An AnnData trained by :func:`bedspace.tl.train` and a model hold the same thing; :meth:`BEDSpaceModel.from_anndata`
and :meth:`BEDSpaceModel.to_anndata` convert one into the other and are exact inverses for any key.
"""

from __future__ import annotations

import copy
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from ._anndata import anndata_of, embedding_of, reference_of, write_embedding
from ._engine.native import SetSpace, embed_rows
from ._formats.starspace import place_symbols, read_starspace_tsv, write_starspace_tsv
from ._keys import DEFAULT
from ._labels import LabelTable
from ._lazy import is_anndata
from ._params import whole_number
from ._plain import plain
from ._reference import ReferenceSets, check_finite
from ._similarity import unit_rows
from ._sources import RegionSets, resolve_sets
from ._universe import Universe, UniverseLike
from ._warnings import warn
from .annotate import RegionAnnotator, TokenMatrix
from .annotate._tokens import CHUNK_TOKENS

if TYPE_CHECKING:
    import anndata as ad


class BEDSpaceModel:
    """A trained joint embedding: the universe, one vector per region and one per label.

    Make one from a trained AnnData (:meth:`from_anndata`) or a StarSpace ``.tsv`` (:meth:`from_starspace`);
    :meth:`save` it as a folder and :meth:`load` it anywhere; :meth:`embed` new BED files; :meth:`search`.

    Parameters
    ----------
    universe
        A :class:`~bedspace.Universe` or anything :meth:`Universe.load <bedspace.Universe.load>` accepts.
    region_vectors
        One vector per universe region (regions × dim); may be memory-mapped, or a function that reads them
        (a model folder reads them at their first use).
    labels
        A :class:`~bedspace.LabelTable`, or a frame with ``field`` and ``value`` columns.
    label_vectors
        One vector per label (labels × dim).
    space
        How a set's vector is made of its region vectors beyond StarSpace's normalised sum
        (:class:`~bedspace._engine.native.SetSpace`: the default space of :func:`bedspace.tl.train`), or ``None``:
        the normalised sum.
    params
        The training parameters (recorded, not used).
    loss
        Training loss per epoch.
    provenance
        How the collection was tokenized (``tokenize``, the tokenization parameters, and ``version``, the
        bedspace that tokenized it), as :func:`bedspace.pp.tokenize` recorded it; recorded, not used.
    reference
        The region sets ``l2r`` and ``r2r`` return, with their tokens and annotator
        (:class:`~bedspace._reference.ReferenceSets`), or ``None``.

    Examples
    --------
    >>> model = bs.BEDSpaceModel.from_anndata(adata)  # doctest: +SKIP
    >>> model.save("model/")  # doctest: +SKIP
    >>> bs.BEDSpaceModel.load("model/").search("query.bed.gz", search_type="r2l")  # doctest: +SKIP
    """

    def __init__(
        self,
        universe: UniverseLike,
        region_vectors: np.ndarray,
        labels: LabelTable | pd.DataFrame,
        label_vectors: np.ndarray,
        *,
        params: dict | None = None,
        loss: np.ndarray | None = None,
        reference: ReferenceSets | None = None,
        provenance: dict | None = None,
        space: SetSpace | None = None,
    ):
        self._universe = Universe.load(universe)
        self._labels = labels if isinstance(labels, LabelTable) else LabelTable.from_frame(labels)
        label_vectors = np.ascontiguousarray(label_vectors, dtype=np.float32)
        if label_vectors.ndim != 2 or label_vectors.shape[0] != len(self._labels):
            raise ValueError(f"{label_vectors.shape[0]} label vectors for {len(self._labels)} labels")
        check_finite(label_vectors, "label vectors")
        if space is not None and space.dim != label_vectors.shape[1]:
            raise ValueError(f"the set space has dimension {space.dim}, the label vectors {label_vectors.shape[1]}")
        self._label_vectors = label_vectors
        self.space = space
        self._read_region_vectors = region_vectors if callable(region_vectors) else None
        if not callable(region_vectors):
            self._region_vectors = self._checked_region_vectors(region_vectors)
        self.params = plain(dict(params or {}))
        self.loss = np.asarray(loss if loss is not None else [], dtype=np.float64)
        self.provenance = plain(dict(provenance or {}))
        self._reference = None
        self._attach(reference)

    def _attach(self, reference: ReferenceSets | None) -> None:
        if reference is not None:
            if reference.vectors.shape[1] != self.dim:
                raise ValueError(f"set vectors have dimension {reference.vectors.shape[1]}, the model {self.dim}")
            if reference.tokens is not None and reference.tokens.n_regions != len(self._universe):
                raise ValueError(
                    f"the reference sets' tokens have {reference.tokens.n_regions} regions, the universe "
                    f"{len(self._universe)}"
                )
        self._reference = reference

    # -- what the model holds ---------------------------------------------------------------------------------
    @property
    def universe(self) -> Universe:
        """The universe: regions, chromosome sizes, name."""
        return self._universe

    @property
    def label_table(self) -> LabelTable:
        """The labels (rows align with :attr:`label_vectors`)."""
        return self._labels

    @property
    def labels(self) -> pd.DataFrame:
        """Label table as a frame: ``field``, ``value``, indexed ``field=value``."""
        return self._labels.frame

    @cached_property
    def _region_vectors(self) -> np.ndarray:
        return self._checked_region_vectors(self._read_region_vectors())

    def _checked_region_vectors(self, region_vectors) -> np.ndarray:
        if not isinstance(region_vectors, np.memmap):  # a model folder's, checked by its checksum, stay on disk
            region_vectors = np.ascontiguousarray(region_vectors, dtype=np.float32)
            check_finite(region_vectors, "region vectors")
        if region_vectors.ndim != 2 or region_vectors.shape[0] != len(self._universe):
            raise ValueError(f"{region_vectors.shape[0]} region vectors for {len(self._universe)} universe regions")
        if region_vectors.shape[1] != self._label_vectors.shape[1]:
            raise ValueError(
                f"region vectors have dimension {region_vectors.shape[1]}, label vectors {self._label_vectors.shape[1]}"
            )
        return region_vectors

    @property
    def region_vectors(self) -> np.ndarray:
        """One vector per universe region (regions × dim; float16 from a model folder); 0 for regions no training set had."""
        return self._region_vectors

    @property
    def label_vectors(self) -> np.ndarray:
        """One vector per label (labels × dim)."""
        return self._label_vectors

    @property
    def reference(self) -> ReferenceSets | None:
        """The region sets the model returns in ``l2r`` and ``r2r`` (its collection), or ``None``."""
        return self._reference

    @property
    def annotator(self) -> RegionAnnotator | None:
        """The default annotator, fitted on the reference sets (:attr:`reference`), or ``None``."""
        return None if self._reference is None else self._reference.annotator

    @property
    def set_names(self) -> pd.Index | None:
        """Names of the carried region sets, or ``None``."""
        return None if self._reference is None else self._reference.names

    @property
    def set_metadata(self) -> pd.DataFrame | None:
        """Metadata of the carried region sets (rows align with :attr:`set_vectors`)."""
        return None if self._reference is None else self._reference.metadata

    @property
    def set_vectors(self) -> np.ndarray | None:
        """Vectors of the carried region sets (sets × dim)."""
        return None if self._reference is None else self._reference.vectors

    @property
    def unit_set_vectors(self) -> np.ndarray | None:
        """:attr:`set_vectors` scaled to length 1."""
        return None if self._reference is None else self._reference.unit_vectors

    @cached_property
    def unit_label_vectors(self) -> np.ndarray:
        """:attr:`label_vectors` scaled to length 1 (zero for a label no training set had)."""
        return unit_rows(self._label_vectors)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self._label_vectors.shape[1])

    @property
    def universe_name(self) -> str:
        """Name of the universe."""
        return self._universe.name

    @property
    def chrom_sizes(self) -> dict[str, int] | None:
        """Chromosome sizes of the universe, when known."""
        return self._universe.chrom_sizes

    @property
    def can_annotate(self) -> bool:
        """Whether the default annotator can run: the reference sets carry tokens and an annotator."""
        return self.annotator is not None

    @property
    def can_compare_labels(self) -> bool:
        """Whether the default r2r can run: the default annotator, with calibrated probabilities."""
        return self.can_annotate and self.annotator.is_calibrated

    def with_reference(self, reference: ReferenceSets | None) -> BEDSpaceModel:
        """The same embedding (its arrays shared, not checked again) carrying another reference collection."""
        model = copy.copy(self)
        if "_region_vectors" not in self.__dict__:  # not read yet: the two models read them once, together
            model._read_region_vectors = lambda: self.region_vectors
        model._attach(reference)
        return model

    def __repr__(self) -> str:
        carried = "" if self._reference is None else f", {len(self._reference)} region sets"
        return (
            f"BEDSpaceModel({len(self._universe):,} regions of {self._universe.name!r}, "
            f"{len(self._labels)} labels in {sorted(self._labels.fields)}{carried}, dim {self.dim})"
        )

    # -- from and to AnnData ----------------------------------------------------------------------------------
    @classmethod
    def from_anndata(cls, adata: ad.AnnData, key: str = DEFAULT, *, copy: bool = True) -> BEDSpaceModel:
        """The model trained by :func:`bedspace.tl.train` into ``adata`` under ``key``, carrying its sets.

        The sets' names, ``.obs`` metadata, vectors (``.obsm["X_" + key]``), tokens (``X``: in memory, or read
        from the file of a backed AnnData as needed) and annotator (``.uns[key]["annotator"]``) come along as the
        reference collection, so that the model alone answers all three searches. ``copy=False`` shares
        ``.obs`` and ``X`` with the AnnData instead of copying them (what the tools do).
        """
        model = cls(**embedding_of(adata, key))
        model._attach(reference_of(adata, key, model.label_table, model.params, copy=copy))
        return model

    def to_anndata(self, key: str = DEFAULT) -> ad.AnnData:
        """The carried region sets as an AnnData laid out as :func:`bedspace.tl.train` leaves one.

        Sets × universe regions, ``X`` the sets' tokens (empty when the model carries none); ``.obs`` the sets'
        metadata, ``.var`` the universe, ``.obsm["X_" + key]`` the set vectors, ``.varm[key]`` the region
        vectors and ``.uns[key]`` the labels, label vectors, parameters, loss, universe record and annotator.
        """
        return anndata_of(self, key)

    def write_into(self, adata: ad.AnnData, key: str = DEFAULT) -> None:
        """Write the embedding (not the set vectors) into an AnnData on the same universe: ``.varm[key]``, ``.uns[key]``.

        What else ``.uns[key]`` holds stays (with the default key, what :func:`bedspace.pp.tokenize` recorded
        there); an annotator recorded there is dropped: it was fitted on the AnnData's sets, not with this
        embedding.
        """
        write_embedding(self, adata, key)

    # -- saving and loading -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model as a self-describing, checksummed folder (no pickle), atomically (see :mod:`bedspace._folder`).

        An existing model folder is replaced only with ``overwrite=True``; a folder that is not a bedspace model
        is never replaced.
        """
        from ._folder import save

        return save(self, Path(folder), overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BEDSpaceModel:
        """Open a folder written by :meth:`save` (formats 1 to 4), reading nothing a search does not need.

        Vectors and tokens are memory-mapped, the sets' metadata is read on first use, and each file is checked
        against the manifest's checksum before it is first used. Every file is opened now, so the model answers
        from this save even if another save replaces the folder (or it is deleted) while the model is in use; a
        save that replaces it during the load makes the load start again. A folder without the default annotator
        is loaded with a warning: its searches rank by the embedding's cosines.

        Raises
        ------
        FileNotFoundError
            Not a model folder (or the temporary folder of a save), or a file is missing.
            :class:`bedspace._folder.ModelReplacedError` (a :class:`FileNotFoundError`): the folder was replaced
            by other saves at every attempt to load it, or removed while it was loaded.
        ValueError
            A file was changed or damaged after saving (its name is given), vectors do not fit the universe or
            the labels, ``model.json`` was edited, or the folder was written by a newer bedspace.
        """
        from ._folder import load

        return load(cls, Path(folder))

    # -- StarSpace interoperability ---------------------------------------------------------------------------
    @classmethod
    def from_starspace(cls, tsv: str | os.PathLike, *, universe: UniverseLike) -> BEDSpaceModel:
        """Load a model trained by the real StarSpace (its ``.tsv``) on a BEDspace training file.

        Region tokens (``chr1_100_200``) are matched to the universe's regions; labels are read from their
        ``__label__`` tokens (``__label__organ=blood`` as bedspace writes them, or plain ``__label__T_cell``,
        which becomes field ``label``).
        """
        symbols, vectors = read_starspace_tsv(tsv)
        uni = Universe.load(universe)
        region_vectors, label_keys, label_vectors = place_symbols(symbols, vectors, uni.region_tokens)
        labels = LabelTable([f for f, _ in label_keys], [v for _, v in label_keys])
        return cls(uni, region_vectors, labels, label_vectors, params={"backend": "starspace", "source": str(tsv)})

    def to_starspace(self, path: str | os.PathLike) -> Path:
        """Write the model as a StarSpace ``.tsv`` (regions with a vector, then labels), readable by StarSpace.

        A model of StarSpace's objective only: StarSpace makes a set's vector the normalised sum of its region
        vectors, and the default space's are not (:attr:`space`), so StarSpace would embed its sets wrongly.
        """
        if self.space is not None:
            raise ValueError(
                "this model is of the default space (the annotator's), whose set vectors are not the normalised sum "
                "of their region vectors that StarSpace computes: StarSpace would embed sets wrongly with it. Train "
                "with space='starspace' to hand a model to StarSpace"
            )
        tokens = self._universe.region_tokens
        known = np.flatnonzero(np.any(self._region_vectors != 0, axis=1))
        symbols = [tokens[i] for i in known] + self._labels.tokens()
        return write_starspace_tsv(symbols, np.vstack([self._region_vectors[known], self._label_vectors]), path)

    # -- embedding new sets -----------------------------------------------------------------------------------
    def has_universe(self, regions: Universe | pd.DataFrame) -> bool:
        """Whether ``regions`` (a Universe, or a frame such as a ``.var``) are this model's universe, in order."""
        return self._universe.same_as(regions)

    def tokenize(self, sets: RegionSets | pd.DataFrame, **kwargs) -> ad.AnnData:
        """Tokenize region sets onto the model's universe, as an AnnData (see :func:`bedspace.pp.tokenize`)."""
        if isinstance(sets, pd.DataFrame):
            sets = {"query": sets}
        return self._universe.tokenize(resolve_sets(sets), **kwargs).to_anndata(self._universe)

    def embed(self, sets, *, n_jobs=None, chunk_tokens: int = CHUNK_TOKENS) -> np.ndarray:
        """Vectors of region sets, made of their region vectors as in training (:attr:`space`).

        StarSpace's space: the normalised sum of their region vectors; the default space: each label field's
        scores as a unit vector.

        An AnnData's ``X`` is read a chunk of rows at a time (each chunk's rows times the region vectors), so a
        collection opened backed (``anndata.read_h5ad(path, backed="r")``, as ``bs.pp.tokenize(..., out=...)``
        returns it) is embedded without loading its matrix: memory is the region vectors, the result and one
        chunk.

        Parameters
        ----------
        sets
            An AnnData tokenized on this model's universe (in memory or backed), BED path(s), a folder, a dict of
            interval frames, or one DataFrame/PyRanges of intervals (one set).
        n_jobs
            Parallel reading of BED files (see :func:`bedspace.pp.tokenize`). With a backed AnnData, a
            ``dask.distributed`` client (or any :class:`concurrent.futures.Executor`) embeds it on the workers:
            each task is one chunk of rows, read from the ``.h5ad`` by the worker itself (so the file must be on a
            filesystem the workers share), and only its set vectors come back; the region vectors are sent to
            each dask worker once.
        chunk_tokens
            With an AnnData: rows are read in chunks of at most this many tokens (a row with more is a chunk by
            itself); 2²⁴ tokens are about 80 MB of a backed ``.h5ad`` in memory at a time. A positive integer.

        Returns
        -------
        sets × dim array (float32), rows in the order of the sets. A set that overlaps no region the model knows
        gets a zero vector and a warning naming it.
        """
        chunk_tokens = whole_number(chunk_tokens, "chunk_tokens")
        if is_anndata(sets):
            from ._ondisk import embed_collection  # h5py and dask: not loaded for a query

            self._universe.check_same(sets.var, what="the AnnData to embed")
            names, tokens = sets.obs_names.tolist(), TokenMatrix.of(sets.X)
            vectors = embed_collection(
                tokens, sets.filename, self.region_vectors, n_jobs=n_jobs, chunk_tokens=chunk_tokens,
                space=self.space,
            )  # fmt: skip
        else:
            named = resolve_sets({"query": sets} if isinstance(sets, pd.DataFrame) else sets)
            tokenized = self._universe.tokenize(named, n_jobs=n_jobs)
            names = tokenized.names
            vectors = self.embed_rows(tokenized.indptr, tokenized.indices)
        unknown = [name for name, known in zip(names, np.any(vectors != 0, axis=1), strict=True) if not known]
        if unknown:
            warn(f"{len(unknown)} set(s) overlap no region the model knows and get a zero vector: {unknown[:10]}")
        return vectors

    def embed_rows(self, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Vectors of sets given as CSR rows of universe regions (``indptr``, ``indices``), all in memory.

        The rows times the region vectors (values ignored: a region is in a set or not), each row L2-normalised
        (or made as :attr:`space` says). :meth:`embed` calls this a chunk of rows at a time, so that a large
        collection is never read whole.
        """
        return embed_rows(self.region_vectors, indptr, indices, self.space)

    # -- searching --------------------------------------------------------------------------------------------
    def search(
        self,
        query,
        search_type: Literal["r2l", "l2r", "r2r"] = "l2r",
        top_k: int = 10,
        field: str | None = None,
        *,
        method: Literal["regions", "embedding"] | None = None,
        min_probability: float = 0.0,
        approximate: bool = False,
        obs_columns: str | list[str] | bool | None = None,
        assembly: str | None = None,
    ) -> pd.DataFrame:
        """Search the joint space: see :func:`bedspace.tl.search` for the query forms, the options and the result.

        The tables of sets (l2r, r2r) show the sets' label fields (:attr:`label_table`'s); ``obs_columns`` adds other
        columns of the sets' metadata by name, or all of them (``"all"``).

        ``approximate=True`` (r2r and l2r with ``method="embedding"``) takes the candidates from an approximate
        nearest-neighbour index of the set vectors, built on the first such search and kept with the model's
        :class:`~bedspace._reference.ReferenceSets` (not saved in model folders); scores stay exact cosines.
        r2r with ``method="regions"`` (the default in StarSpace's space) adds to the cosine the probability that
        the query shares a set's labels; in the default space, r2r and l2r rank by the vectors.

        ``assembly`` is the genome build of a region-set query's coordinates (``"hg38"``): when it is not the
        reference's (:attr:`universe`'s ``assembly``), the query is lifted onto the reference's build first.
        """
        from ._search import search

        return search(
            self, query, search_type, top_k, field, method=method, min_probability=min_probability,
            approximate=approximate, obs_columns=obs_columns, assembly=assembly,
        )  # fmt: skip

    def explain(
        self,
        query,
        *,
        label: str | list[str] | None = None,
        field: str | None = None,
        top_k: int | None = 100,
        assembly: str | None = None,
    ):
        """Why the query got a label: see :func:`bedspace.tl.explain` for the options and the result.

        Returns an :class:`~bedspace._explain.Explanation`: the label's score split exactly over the query's
        universe regions and the reference sets (its ``regions``, ``sets`` and ``labels`` tables, and
        ``write_bed``).
        """
        from ._explain import explain

        return explain(self, query, label, field, top_k, assembly=assembly)

    def need_reference(self) -> ReferenceSets:
        """The reference sets, or an error saying how to carry them."""
        if self._reference is None:
            raise ValueError(
                "this model carries no region sets to search; make it with BEDSpaceModel.from_anndata(adata)"
            )
        return self._reference

    def need_annotator(self) -> RegionAnnotator:
        """The default annotator, or an error saying why there is none."""
        if self.annotator is None:
            raise ValueError(
                "the default annotator compares a query's regions with the reference sets', and this model carries "
                "no tokens of its sets (a model from StarSpace?): use method='embedding'"
            )
        return self.annotator
