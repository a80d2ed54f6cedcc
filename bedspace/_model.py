"""``BEDSpaceModel``: the trained embedding — universe, labels, region and label vectors — and what it carries.

The model is the trained state in one object (as gensim keeps ``KeyedVectors`` apart from the trainer): it
embeds new region sets, answers the three searches, saves itself as a checksummed folder and reads and writes
StarSpace's ``.tsv``. The reference collection it can return in ``l2r`` and ``r2r`` (set names, metadata and
vectors) is one separate part of it, :class:`~bedspace._reference.ReferenceSets`.

An AnnData trained by :func:`bedspace.tl.train` and a model hold the same thing; :meth:`BEDSpaceModel.from_anndata`
and :meth:`BEDSpaceModel.to_anndata` convert one into the other and are exact inverses for any key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._annotation import (
    LABEL_WEIGHT,
    Annotation,
    Annotator,
    KernelClassifier,
    annotate,
    arrays_record,
    record_arrays,
    shared_label_probability,
)
from ._atomic import atomic_folder
from ._cache import PerObject
from ._engine.native import set_vectors
from ._formats.bed import read_intervals, write_bed
from ._formats.starspace import place_symbols, read_starspace_tsv, write_starspace_tsv
from ._keys import TOKENIZE, Keys
from ._labels import LabelTable
from ._logging import info
from ._ondisk import embed_file_rows, executor_of
from ._reference import ReferenceSets, check_finite
from ._search import SEARCH_TYPES, annotation_table, ranked_table
from ._similarity import scores_against, unit_rows
from ._sources import RegionSets, resolve_sets
from ._universe import Universe, UniverseLike
from ._version import __version__
from ._warnings import warn

FORMAT = "bedspace-model"
FORMAT_VERSION = 2
MANIFEST = "model.json"
FILES = {
    "universe": "universe.bed.gz",
    "region_vectors": "region_vectors.npy",
    "labels": "labels.tsv",
    "label_vectors": "label_vectors.npy",
}
REFERENCE_FILE = "reference.h5ad"
CLASSIFIER_FILE = "classifier.npz"
_V1_SET_FILES = {"sets": "sets.csv.gz", "set_vectors": "set_vectors.npy"}  # folders of format 1 (bedspace 0.1)


class BEDSpaceModel:
    """A trained joint embedding: the universe, one vector per region and one per label.

    Make one from a trained AnnData (:meth:`from_anndata`) or a StarSpace ``.tsv`` (:meth:`from_starspace`);
    :meth:`save` it as a folder and :meth:`load` it anywhere; :meth:`embed` new BED files; :meth:`search`.

    Parameters
    ----------
    universe
        A :class:`~bedspace.Universe` or anything :meth:`Universe.load <bedspace.Universe.load>` accepts.
    region_vectors
        One vector per universe region (regions × dim).
    labels
        A :class:`~bedspace.LabelTable`, or a frame with ``field`` and ``value`` columns.
    label_vectors
        One vector per label (labels × dim).
    params
        The training parameters (recorded, not used).
    loss
        Training loss per epoch.
    reference
        The region sets ``l2r`` and ``r2r`` return (names, metadata, vectors; tokens for the default
        annotator), or ``None``.
    annotator
        Calibration and domain of the default r2l annotator (fitted by :func:`bedspace.tl.train`), or ``None``.
    classifier
        The default annotator's classifier as :func:`bedspace.tl.calibrate` kept it
        (``KernelClassifier.to_record``), or ``None``. It is used when it fits the reference sets as they are;
        otherwise the classifier is fitted on them at the first query that needs it.

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
        annotator: Annotator | None = None,
        classifier: dict | None = None,
    ):
        self._universe = Universe.load(universe)
        self._labels = labels if isinstance(labels, LabelTable) else LabelTable.from_frame(labels)
        region_vectors = np.ascontiguousarray(region_vectors, dtype=np.float32)
        label_vectors = np.ascontiguousarray(label_vectors, dtype=np.float32)
        if region_vectors.ndim != 2 or region_vectors.shape[0] != len(self._universe):
            raise ValueError(f"{region_vectors.shape[0]} region vectors for {len(self._universe)} universe regions")
        if label_vectors.ndim != 2 or label_vectors.shape[0] != len(self._labels):
            raise ValueError(f"{label_vectors.shape[0]} label vectors for {len(self._labels)} labels")
        if region_vectors.shape[1] != label_vectors.shape[1]:
            raise ValueError(
                f"region vectors have dimension {region_vectors.shape[1]}, label vectors {label_vectors.shape[1]}"
            )
        check_finite(region_vectors, "region vectors")
        check_finite(label_vectors, "label vectors")
        if reference is not None and reference.vectors.shape[1] != region_vectors.shape[1]:
            raise ValueError(
                f"set vectors have dimension {reference.vectors.shape[1]}, the model {region_vectors.shape[1]}"
            )
        self._region_vectors = region_vectors
        self._label_vectors = label_vectors
        self.params = _plain(dict(params or {}))
        self.loss = np.asarray(loss if loss is not None else [], dtype=np.float64)
        if reference is not None and reference.tokens is not None and reference.tokens.shape[1] != len(self._universe):
            raise ValueError(
                f"the reference sets' tokens have {reference.tokens.shape[1]} regions, the universe {len(self._universe)}"
            )
        self._reference = reference
        self._annotator = annotator
        self._classifier: KernelClassifier | None = None
        self._classifier_record = classifier
        self._stored_annotation: Annotation | None = None

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

    @property
    def region_vectors(self) -> np.ndarray:
        """One vector per universe region (regions × dim); 0 for regions the training never saw."""
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
    def annotator(self) -> Annotator | None:
        """Calibration and domain of the default r2l annotator, or ``None`` (trained with ``calibrate=False``)."""
        return self._annotator

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
        return int(self._region_vectors.shape[1])

    @property
    def universe_name(self) -> str:
        """Name of the universe."""
        return self._universe.name

    @property
    def chrom_sizes(self) -> dict[str, int] | None:
        """Chromosome sizes of the universe, when known."""
        return self._universe.chrom_sizes

    def with_reference(self, reference: ReferenceSets | None) -> BEDSpaceModel:
        """The same embedding carrying another reference collection (or none)."""
        return BEDSpaceModel(
            self._universe,
            self._region_vectors,
            self._labels,
            self._label_vectors,
            params=self.params,
            loss=self.loss,
            reference=reference,
            annotator=self._annotator,
            classifier=self._classifier_record,
        )

    def __repr__(self) -> str:
        carried = "" if self._reference is None else f", {len(self._reference)} region sets"
        return (
            f"BEDSpaceModel({len(self._universe):,} regions of {self._universe.name!r}, "
            f"{len(self._labels)} labels in {sorted(self._labels.fields)}{carried}, dim {self.dim})"
        )

    # -- from and to AnnData ----------------------------------------------------------------------------------
    @classmethod
    def from_anndata(cls, adata: ad.AnnData, key: str = "bedspace") -> BEDSpaceModel:
        """The model trained by :func:`bedspace.tl.train` into ``adata`` under ``key``, carrying its sets.

        The sets' names, ``.obs`` metadata, vectors (``.obsm["X_" + key]``) and tokens (``X``, unless the AnnData
        is backed) come along as the reference collection, so that the model alone answers all three searches.
        """
        model = _embedding_of(adata, key)
        keys = Keys(key)
        return model.with_reference(
            ReferenceSets(adata.obs.copy(), np.asarray(adata.obsm[keys.set_vectors]), _tokens_of(adata, copy=True))
        )

    def to_anndata(self, key: str = "bedspace") -> ad.AnnData:
        """The carried region sets as an AnnData laid out as :func:`bedspace.tl.train` leaves one.

        Sets × universe regions, ``X`` the sets' tokens (empty when the model carries none); ``.obs`` the sets'
        metadata, ``.var`` the universe, ``.obsm["X_" + key]`` the set vectors, ``.varm[key]`` the region
        vectors and ``.uns[key]`` the labels, label vectors, parameters, loss and universe record.
        """
        if self._reference is None:
            raise ValueError("this model carries no region sets; make it with BEDSpaceModel.from_anndata(adata)")
        keys = Keys(key)
        tokens = self._reference.tokens
        adata = ad.AnnData(
            X=sp.csr_matrix((len(self._reference), len(self._universe)), dtype=np.float32)
            if tokens is None
            else tokens.copy(),
            obs=self._reference.metadata.copy(),
            var=self._universe.to_var(),
        )
        adata.obsm[keys.set_vectors] = self._reference.vectors.copy()
        self.write_into(adata, key)
        classifier = self._kept_classifier()
        if classifier is not None:  # for these very sets: a query of the AnnData need not refit it
            adata.uns[keys.record] = {**adata.uns[keys.record], "classifier": classifier}
        return adata

    def write_into(self, adata: ad.AnnData, key: str = "bedspace") -> None:
        """Write the embedding (not the set vectors) into an AnnData on the same universe: ``.varm[key]``, ``.uns[key]``."""
        self._universe.check_same(adata.var, what="the AnnData")
        keys = Keys(key)
        adata.varm[keys.region_vectors] = self._region_vectors
        record = dict(adata.uns.get(keys.record, {}))
        record.update(
            params=self.params,
            labels=self._labels.frame,
            label_vectors=self._label_vectors,
            loss=self.loss,
            universe=self._universe.record(),
        )
        record.pop("annotator", None)
        record.pop("classifier", None)  # fitted on this model's reference sets, not the AnnData's
        if self._annotator is not None:
            record["annotator"] = self._annotator.to_dict()
        adata.uns[keys.record] = record

    # -- saving and loading -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model as a self-describing, checksummed folder (no pickle), atomically.

        The folder holds ``model.json`` (format, bedspace version, parameters, universe name and chromosome
        sizes, loss, and the size and sha256 of every other file), ``universe.bed.gz``, ``region_vectors.npy``,
        ``labels.tsv``, ``label_vectors.npy`` and, when the model carries its reference collection,
        ``reference.h5ad`` (set names, metadata with their dtypes, set vectors and tokens) and
        ``classifier.npz`` (the default annotator's classifier, so that a loaded model does not refit it). An
        existing model folder is replaced only with ``overwrite=True``; a folder that is not a bedspace model is
        never replaced.
        """
        folder = Path(folder)
        with atomic_folder(folder, overwrite=overwrite, replaceable=is_model_folder) as tmp:
            regions = self._universe.regions
            write_bed(regions[["chrom", "start", "end"]], tmp / FILES["universe"])
            np.save(tmp / FILES["region_vectors"], self._region_vectors, allow_pickle=False)
            self._labels.frame.to_csv(tmp / FILES["labels"], sep="\t", index=False)
            np.save(tmp / FILES["label_vectors"], self._label_vectors, allow_pickle=False)
            files = dict(FILES)
            if self._reference is not None:
                self._reference.save(tmp / REFERENCE_FILE)
                files["reference"] = REFERENCE_FILE
            classifier = self._kept_classifier()
            if classifier is not None:
                with open(tmp / CLASSIFIER_FILE, "wb") as handle:
                    np.savez(handle, **record_arrays(classifier))
                files["classifier"] = CLASSIFIER_FILE
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "bedspace_version": __version__,
                "dim": self.dim,
                "n_regions": len(self._universe),
                "n_labels": len(self._labels),
                "n_sets": None if self._reference is None else len(self._reference),
                "universe": self._universe.record(),
                "params": self.params,
                "loss": self.loss.tolist(),
                "annotator": None if self._annotator is None else self._annotator.to_dict(),
                "files": {role: {"name": name, **_fingerprint(tmp / name)} for role, name in files.items()},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BEDSpaceModel:
        """Read a folder written by :meth:`save`, checking every file against the manifest's checksums.

        Raises
        ------
        FileNotFoundError
            Not a model folder, or a file is missing.
        ValueError
            A file was changed or damaged after saving (its name is given), vectors do not fit the universe or
            the labels, or the folder was written by a newer bedspace.
        """
        folder = Path(folder)
        manifest = _read_manifest(folder)
        version = manifest["format_version"]
        if version == 1:
            return _load_format_1(cls, folder, manifest)
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(role in files for role in FILES):
            raise ValueError(f"{folder / MANIFEST}: 'files' must list {sorted(FILES)}")
        paths = {}
        for role, entry in files.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"]:
                raise ValueError(f"{folder / MANIFEST}: the entry of {role!r} in 'files' is malformed: {entry!r}")
            path = folder / entry["name"]
            if not path.is_file():
                raise FileNotFoundError(f"{folder}: model folder is incomplete, missing {entry['name']}")
            if _fingerprint(path) != {"bytes": entry.get("bytes"), "sha256": entry.get("sha256")}:
                raise ValueError(
                    f"{path} does not match the checksum in {MANIFEST}: it was changed or damaged after the model was "
                    "saved; re-save the model, or restore the file"
                )
            paths[role] = path
        info = manifest.get("universe") or {}
        universe = Universe.from_intervals(
            _read(read_intervals, paths["universe"]), name=str(info.get("name", "universe")),
            chrom_sizes=info.get("chrom_sizes"),
        )  # fmt: skip
        labels = _read(
            lambda p: LabelTable.from_frame(pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)),
            paths["labels"],
        )
        region_vectors = _read_vectors(paths["region_vectors"], len(universe), manifest.get("dim"), "universe regions")
        label_vectors = _read_vectors(paths["label_vectors"], len(labels), manifest.get("dim"), "labels")
        reference = None
        if "reference" in paths:
            reference = ReferenceSets.load(paths["reference"])
            if reference.vectors.shape[1] != manifest.get("dim"):
                raise ValueError(
                    f"{paths['reference']}: set vectors have dimension {reference.vectors.shape[1]}, "
                    f"{MANIFEST} says {manifest.get('dim')}"
                )
        classifier = None
        if "classifier" in paths:
            classifier = _read(lambda p: arrays_record(dict(np.load(p, allow_pickle=False))), paths["classifier"])
        return cls(
            universe,
            region_vectors,
            labels,
            label_vectors,
            params=manifest.get("params") or {},
            loss=np.asarray(manifest.get("loss") or [], dtype=np.float64),
            reference=reference,
            annotator=_read_annotator(manifest.get("annotator"), folder / MANIFEST),
            classifier=classifier,
        )

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
        """Write the model as a StarSpace ``.tsv`` (regions with a vector, then labels), readable by StarSpace."""
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

    def embed(
        self, sets: RegionSets | pd.DataFrame | ad.AnnData, *, n_jobs=None, chunk_tokens: int = 2**24
    ) -> np.ndarray:
        """Vectors of region sets: the normalised sum of their region vectors, as in training.

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
        if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int | np.integer) or chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
        if isinstance(sets, ad.AnnData):
            self._universe.check_same(sets.var, what="the AnnData to embed")
            names, X = sets.obs_names.tolist(), sets.X
            if sets.isbacked and getattr(X, "format", None) == "csr":
                indptr = np.asarray(X.group["indptr"][...], dtype=np.int64)  # n_sets + 1 numbers, small
            else:
                # in memory already (or a backed CSC/dense matrix, which cannot be read by rows): as CSR
                if sets.isbacked:
                    X = X.to_memory() if hasattr(X, "to_memory") else np.asarray(X)
                X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
                indptr = X.indptr.astype(np.int64, copy=False)
            row_chunks = _row_chunks(indptr, chunk_tokens)
            executor = executor_of(n_jobs)
            if isinstance(executor, Executor) and sets.isbacked and getattr(sets.X, "format", None) == "csr":
                vectors = embed_file_rows(sets.filename, row_chunks, self._region_vectors, executor)
            else:
                vectors = np.zeros((len(names), self.dim), np.float32)
                for start, stop in row_chunks:
                    chunk = X[start:stop]
                    chunk = chunk if sp.issparse(chunk) else sp.csr_matrix(chunk)
                    vectors[start:stop] = self.embed_rows(chunk.indptr, chunk.indices)
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

        The rows times the region vectors (values ignored: a region is in a set or not), each row L2-normalised.
        :meth:`embed` calls this a chunk of rows at a time, so that a large collection is never read whole.
        """
        indptr = np.asarray(indptr, dtype=np.int64)
        if indptr.size - 1 >= 8:
            return set_vectors(self._region_vectors, indptr, indices)
        # A few rows (a query): the kernel spreads rows over threads, so more threads cannot help, and waking them
        # costs tens of ms on a busy machine. One thread gives the same numbers (each row is summed by one thread).
        import numba  # numba is loaded already (the kernel is numba); imported here to keep the edit to this method

        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return set_vectors(self._region_vectors, indptr, indices)
        finally:
            numba.set_num_threads(threads)

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
    ) -> pd.DataFrame:
        """Search the joint space: see :func:`bedspace.tl.search` for the query forms, the options and the result.

        ``approximate=True`` (r2r and l2r with ``method="embedding"``) takes the candidates from an approximate
        nearest-neighbour index of the set vectors, built on the first such search and kept with the model's
        :class:`~bedspace._reference.ReferenceSets` (not saved in model folders); scores stay exact cosines.
        The default r2r (``method="regions"``) adds to the cosine the probability that the query shares a set's
        labels (:meth:`set_scores`).
        """
        if search_type not in SEARCH_TYPES:
            raise ValueError(f"search_type must be one of {SEARCH_TYPES}, got {search_type!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
            raise ValueError(f"top_k must be a whole number >= 1, got {top_k!r}")
        if method not in (None, "regions", "embedding"):
            raise ValueError(f"method must be 'regions', 'embedding' or None, got {method!r}")
        if not (isinstance(min_probability, int | float) and 0 <= min_probability <= 1):
            raise ValueError(f"min_probability must be a number in [0, 1], got {min_probability!r}")
        if search_type != "r2l" and min_probability:
            raise ValueError("min_probability is an option of r2l (annotation) only")
        if not isinstance(approximate, bool | np.bool_):
            raise ValueError(f"approximate must be True or False, got {approximate!r}")
        if approximate and search_type == "r2l":
            raise ValueError("approximate=True is an option of r2r and l2r (it finds sets); r2l ranks labels exactly")
        if search_type == "l2r":
            reference = self._need_reference()
            queries = [query] if isinstance(query, str) else list(query)
            rows = [self._labels.resolve(str(q), field) for q in queries]
            by_regions = (method or ("regions" if self.can_annotate else "embedding")) == "regions"
            if approximate and by_regions:
                raise ValueError(
                    "approximate=True finds sets by their vectors' cosine to the label's: use method='embedding' "
                    "(the default l2r annotates every stored set once, then keeps the answers)"
                )
            if approximate:
                return _approximate_table(
                    reference, self.unit_label_vectors[rows], None, top_k, self._labels.names[rows].tolist(),
                    several=not isinstance(query, str),
                )  # fmt: skip
            if by_regions:
                scores = self._stored_label_scores(rows)
            else:
                scores = scores_against(self.unit_label_vectors[rows], reference.unit_vectors)
            return ranked_table(
                self._labels.names[rows].tolist(), scores, top_k, reference.names, reference.metadata,
                several=not isinstance(query, str),
            )  # fmt: skip
        queries = self._queries(query)
        several = len(queries.names) > 1 or isinstance(query, list | tuple | ad.AnnData)
        if search_type == "r2l":
            method = method or ("regions" if self.can_annotate else "embedding")
            if method == "regions":
                return self._annotate(queries, field, top_k, min_probability, several)
            if min_probability:
                raise ValueError("min_probability needs calibrated probabilities: use method='regions'")
            in_field = self._labels.in_field(field)
            scores = scores_against(queries.vectors, self.unit_label_vectors[in_field])
            return ranked_table(
                queries.names, scores, top_k, self._labels.names[in_field], self._labels.frame[in_field],
                several=several,
            )  # fmt: skip
        reference = self._need_reference()
        method = method or ("regions" if self.can_compare_labels else "embedding")
        if approximate and method == "regions":
            raise ValueError(
                "approximate=True finds sets by the cosine of their vectors alone: use method='embedding' (the "
                "default r2r also weighs the probability that a set shares the query's labels)"
            )
        if approximate:
            return _approximate_table(reference, queries.vectors, queries.own, top_k, queries.names, several=several)
        scores, parts, annotation = self._scored_sets(
            queries.tokens, queries.vectors, method, coverage=queries.coverage, own=queries.own
        )
        if annotation is not None:
            _warn_outside(queries.names, annotation.in_domain)
        return ranked_table(
            queries.names, scores, top_k, reference.names, reference.metadata, drop_excluded=True, several=several,
            parts=parts,
        )  # fmt: skip

    @property
    def can_compare_labels(self) -> bool:
        """Whether the default r2r can run: the default annotator, with calibrated probabilities."""
        return self.can_annotate and self._annotator is not None

    def set_scores(
        self,
        tokens: sp.csr_matrix,
        vectors: np.ndarray | None = None,
        *,
        method: Literal["regions", "embedding"] = "regions",
        coverage: np.ndarray | None = None,
        own: np.ndarray | None = None,
        annotation: Annotation | None = None,
    ) -> np.ndarray:
        """Queries × reference sets: the scores r2r ranks by (arrays in and out; :meth:`search` makes the table).

        ``"embedding"``: the cosine of the set vectors. ``"regions"`` (the default r2r): that cosine plus
        ``LABEL_WEIGHT`` (0.5) × the probability that the query carries the set's labels, averaged over the label
        fields (:func:`~bedspace._annotation.shared_label_probability`; the query annotated by the default
        annotator). ``tokens``: queries × this model's universe regions (0/1 CSR); ``vectors``: their unit
        vectors (embedded from the tokens when not given); ``own``: per query, the reference set it is (never its
        own hit: scored ``-inf``, and annotated from the others), or -1; ``annotation``: the queries'
        :meth:`annotate_tokens` answer when already at hand (not computed again).
        """
        if vectors is None:
            vectors = unit_rows(self.embed_rows(tokens.indptr, tokens.indices))
        return self._scored_sets(tokens, vectors, method, coverage=coverage, own=own, annotation=annotation)[0]

    def _scored_sets(
        self, tokens: sp.csr_matrix, vectors: np.ndarray, method: str, *, coverage, own, annotation=None
    ) -> tuple[np.ndarray, dict[str, np.ndarray] | None, Annotation | None]:
        """r2r scores (own sets ``-inf``), what they are made of (``cosine``, ``shared_labels``), the annotation."""
        if method not in ("regions", "embedding"):
            raise ValueError(f"method must be 'regions' or 'embedding', got {method!r}")
        cosine = scores_against(vectors, self._need_reference().unit_vectors)
        if method == "embedding":
            return self._exclude_own(cosine, own), None, None
        if annotation is None:
            annotation = self.annotate_tokens(tokens, coverage=coverage, own=own)
        shared = self.shared_labels(annotation)
        scores = self._exclude_own(cosine + LABEL_WEIGHT * shared, own)
        return scores, {"cosine": cosine, "shared_labels": shared}, annotation

    def shared_labels(self, annotation: Annotation) -> np.ndarray:
        """Queries × reference sets: the probability that each query carries each set's labels (mean over fields).

        From the calibrated probabilities of an :meth:`annotate_tokens` answer; see
        :func:`~bedspace._annotation.shared_label_probability`.
        """
        if not self.can_compare_labels:
            raise ValueError(
                "the default r2r weighs the probability that sets share labels, and this model has no calibrated "
                "annotator (trained with calibrate=False, or without its sets' tokens): use method='embedding', or "
                "bs.tl.calibrate the collection first"
            )
        fields = [f for f in self._annotator.fields if f in annotation.probabilities]
        return shared_label_probability(
            {f: annotation.probabilities[f] for f in fields},
            {f: self._reference_codes[f] for f in fields},
            {f: self._annotator.priors[f] for f in fields},
        )

    @staticmethod
    def _exclude_own(scores: np.ndarray, own: np.ndarray | None) -> np.ndarray:
        """A stored set asked for by name is not its own hit (in place; returned)."""
        if own is not None:
            rows = np.flatnonzero(np.asarray(own) >= 0)
            scores[rows, np.asarray(own)[rows]] = -np.inf
        return scores

    @property
    def can_annotate(self) -> bool:
        """Whether the default annotator can run: the model carries its reference sets' tokens."""
        return self._reference is not None and self._reference.tokens is not None

    @property
    def classifier(self) -> KernelClassifier:
        """The default annotator's kernel ridge classifier, fitted on the reference sets (on first use, then kept).

        One per label field the reference sets' metadata has (see :mod:`bedspace._annotation`). The one
        :func:`bedspace.tl.calibrate` fitted and kept with the collection is used when it fits the reference sets
        as they are (the same sets, tokens and labels).
        """
        if not self.can_annotate:
            raise ValueError(
                "the default annotator compares a query's regions with the reference sets', and this model carries "
                "no tokens of its sets (a model from StarSpace, or made from a backed AnnData): use "
                "method='embedding'"
            )
        if self._classifier is None:
            codes = {f: (c, int(self._labels.in_field(f).sum())) for f, c in self._reference_codes.items()}
            tokens = self._reference.tokens
            if self._classifier_record is not None:
                self._classifier = KernelClassifier.from_record(self._classifier_record, tokens, codes)
                if self._classifier is None:
                    info("the kept annotator classifier does not fit the reference sets (changed since training)")
            if self._classifier is None:
                info(f"fitting the default annotator's classifier on {tokens.shape[0]:,} reference sets")
                seed = self.params.get("random_state", 0)
                self._classifier = KernelClassifier.fit(tokens, codes, random_state=int(seed or 0))
        return self._classifier

    def _kept_classifier(self) -> dict | None:
        """The classifier to keep with the reference sets: the fitted one, else the one given (unchecked)."""
        if self._classifier is not None:
            return self._classifier.to_record(self._reference.tokens)
        return self._classifier_record if self.can_annotate else None

    @cached_property
    def _reference_codes(self) -> dict[str, np.ndarray]:
        """Per label field the reference sets' metadata has, each reference set's label column (-1: none)."""
        metadata = self._need_reference().metadata
        return {f: self._labels.codes(f, metadata[f]) for f in self._labels.fields if f in metadata.columns}

    def annotate_tokens(
        self, tokens: sp.csr_matrix, *, coverage: np.ndarray | None = None, own: np.ndarray | None = None
    ) -> Annotation:
        """The default annotator's arrays for tokenized queries (sets × this model's universe regions, 0/1 CSR).

        Per field, queries × labels ``scores`` and (with a calibrated annotator) ``probabilities``, and per query
        ``in_domain``; ``own``: per query, the reference set it is (annotated from the others), or -1. This is
        what :meth:`search` ranks r2l and l2r by; :func:`bedspace.tl.evaluate` measures it.
        """
        return annotate(
            tokens, self._reference.tokens, self.classifier, self._annotator, coverage=coverage, own=own
        )  # fmt: skip

    def _stored_label_scores(self, rows: list[int]) -> np.ndarray:
        """Labels × stored sets: how the annotator ranks each set for each label, from the other sets (l2r)."""
        if self._stored_annotation is None:  # every stored set annotated once, leave-one-out, then kept
            self._stored_annotation = self.annotate_tokens(self._reference.tokens, own=np.arange(len(self._reference)))
        field_of = self._labels.field_of
        scores = np.empty((len(rows), len(self._reference)))
        for i, row in enumerate(rows):
            field = field_of[row]
            if field not in self._stored_annotation.scores:
                raise KeyError(f"the stored sets have no metadata column {field!r} to rank them for {field} labels by")
            column = int(np.flatnonzero(np.flatnonzero(self._labels.in_field(field)) == row)[0])
            scores[i] = self._stored_annotation.ranking(field)[:, column]
        return scores

    def _annotate(self, queries: _Queries, field, top_k, min_probability, several) -> pd.DataFrame:
        """r2l by the default annotator (:mod:`bedspace._annotation`): per field, labels with probabilities."""
        if min_probability and self._annotator is None:
            raise ValueError("min_probability needs calibrated probabilities: train with calibrate=True")
        reference = self._need_reference()
        fields = self._labels.fields if field is None else [field]
        self._labels.in_field(fields[0])  # an unknown field is an error naming the fields
        missing = [f for f in fields if f not in reference.metadata.columns]
        if missing:
            raise KeyError(f"the reference sets have no metadata column(s) {missing} to annotate with")
        label_frames = {f: self._labels.frame[self._labels.in_field(f)] for f in fields}
        result = self.annotate_tokens(queries.tokens, coverage=queries.coverage, own=queries.own)
        _warn_outside(queries.names, result.in_domain)
        scores = {f: result.scores[f] for f in fields}
        probabilities = {f: result.probabilities[f] for f in fields if f in result.probabilities}
        return annotation_table(
            queries.names, scores, probabilities, result.in_domain, label_frames, top_k,
            min_probability=min_probability, several=several,
        )  # fmt: skip

    def _need_reference(self) -> ReferenceSets:
        if self._reference is None:
            raise ValueError(
                "this model carries no region sets to search; make it with BEDSpaceModel.from_anndata(adata)"
            )
        return self._reference

    def _queries(self, query) -> _Queries:
        """Names, tokens, unit vectors and coverage of region-set queries; own rows for stored sets asked by name.

        An existing file is always read as a file, even when a stored set has its name; a string that is not
        a file is a stored set's name. Queries that overlap no known region cannot be ranked: one alone is an
        error, several are left out with a warning.
        """
        if isinstance(query, ad.AnnData):
            self._universe.check_same(query.var, what="the query AnnData")
            X = query.X.to_memory() if query.isbacked and hasattr(query.X, "to_memory") else query.X
            tokens = X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)
            column = "frac_regions_in_universe"
            coverage = query.obs[column].to_numpy(np.float64) if column in query.obs else None
            return self._as_queries(query.obs_names.tolist(), tokens, coverage, None)
        if isinstance(query, pd.DataFrame):
            tokenized = self._universe.tokenize(resolve_sets({"query": query}))
            return self._as_queries(["query"], _csr(tokenized, len(self._universe)), _coverage(tokenized), None)
        items = [query] if isinstance(query, str | os.PathLike) else list(query)
        named: list[tuple[str, Path | int]] = []
        for item in items:
            path = Path(item)
            if path.exists():
                named += [(name, bed) for name, bed in resolve_sets(path)] if path.is_dir() else [(path.name, path)]
                continue
            row = self._reference.position(str(item)) if self._reference is not None else None
            if row is None or not isinstance(item, str):
                known = [] if self._reference is None else self._reference.names.tolist()
                close = difflib.get_close_matches(str(item), known, n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise FileNotFoundError(
                    f"query {str(item)!r} is neither a BED file nor a region set of the collection{hint}"
                )
            named.append((str(item), row))
        files = [(name, source) for name, source in named if isinstance(source, Path)]
        tokenized = self._universe.tokenize(files) if files else None
        file_tokens = _csr(tokenized, len(self._universe)) if files else None
        file_coverage = _coverage(tokenized) if files else None
        rows, coverage, own, next_file = [], [], [], 0
        stored = self._reference.tokens if self._reference is not None else None
        for _, source in named:
            if isinstance(source, Path):
                rows.append(file_tokens[next_file])
                coverage.append(file_coverage[next_file])
                own.append(-1)
                next_file += 1
            else:
                rows.append(stored[source] if stored is not None else sp.csr_matrix((1, len(self._universe))))
                coverage.append(np.nan)
                own.append(source)
        tokens = sp.vstack(rows, format="csr") if rows else sp.csr_matrix((0, len(self._universe)))
        return self._as_queries([name for name, _ in named], tokens, np.asarray(coverage), np.asarray(own))

    def _as_queries(self, names, tokens: sp.csr_matrix, coverage, own) -> _Queries:
        vectors = unit_rows(self.embed_rows(tokens.indptr, tokens.indices)) if tokens.shape[0] else None
        if own is not None:  # a stored set asked for by name has the vector it was given
            for i, row in enumerate(own):
                if row >= 0:
                    vectors[i] = self._reference.unit_vectors[row]
        n = len(names)
        queries = _Queries(
            list(names),
            tokens,
            np.zeros((0, self.dim), np.float32) if vectors is None else vectors,
            np.full(n, np.nan) if coverage is None else np.asarray(coverage, dtype=np.float64),
            np.full(n, -1, np.int64) if own is None else np.asarray(own, dtype=np.int64),
        )
        return queries.rankable()


def _warn_outside(names: list[str], in_domain: np.ndarray) -> None:
    """Warn of queries the annotator judged unlike every reference set (their labels get the base rates)."""
    outside = [n for n, inside in zip(names, in_domain, strict=True) if not inside]
    if outside:
        warn(
            f"{len(outside)} quer{'y is' if len(outside) == 1 else 'ies are'} unlike every reference set (few of "
            f"its regions in the universe, or no more shared regions than chance: another genome, assay or a "
            f"random file?); their labels get the base rates, not a prediction: {outside[:10]}"
        )


def _approximate_table(
    reference: ReferenceSets, vectors: np.ndarray, own: np.ndarray | None, top_k: int, names: list[str], *, several
) -> pd.DataFrame:
    """:func:`ranked_table` of the candidates of the reference's approximate index (scored exactly).

    A query's own stored set (``own`` ≥ 0) is not its own hit: one more candidate is asked for, and it is dropped.
    """
    index = reference.approximate_index
    exclude = own is not None and bool((own >= 0).any())
    parts = []
    # a few hundred queries at a time: each part's score matrix is queries × the union of their candidates
    for start in range(0, len(names), 256):
        stop = min(start + 256, len(names))
        found, scores = index.query(vectors[start:stop], top_k + 1 if exclude else top_k)
        if exclude:
            scores[(found == own[start:stop, None]) & (found >= 0)] = -np.inf
        kept = np.isfinite(scores)
        columns = np.unique(found[kept])
        dense = np.full((stop - start, len(columns)), -np.inf)
        dense[np.nonzero(kept)[0], np.searchsorted(columns, found[kept])] = scores[kept]
        metadata = reference.metadata.iloc[columns]
        parts.append(
            ranked_table(names[start:stop], dense, top_k, metadata.index, metadata, drop_excluded=True, several=True)
        )
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return table if several else table.drop(columns="query")


@dataclass
class _Queries:
    """Region-set queries: names, tokens (CSR), unit vectors, share of regions in the universe, own stored row."""

    names: list[str]
    tokens: sp.csr_matrix
    vectors: np.ndarray
    coverage: np.ndarray
    own: np.ndarray

    def rankable(self) -> _Queries:
        """Without queries that overlap no known region: an error for one query, a warning for several."""
        empty = ~np.any(self.vectors != 0, axis=1)
        if not empty.any():
            return self
        lost = [n for n, e in zip(self.names, empty, strict=True) if e]
        message = "overlap no region the model knows (an empty file, another genome, or another universe?)"
        if empty.all():
            raise ValueError(f"nothing to rank: the query {', '.join(map(repr, lost[:10]))} {message}")
        warn(f"{len(lost)} queries {message} and are left out: {lost[:10]}")
        keep = ~empty
        return _Queries(
            [n for n, k in zip(self.names, keep, strict=True) if k],
            self.tokens[keep],
            self.vectors[keep],
            self.coverage[keep],
            self.own[keep],
        )


def _row_chunks(indptr: np.ndarray, chunk_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of at most ``chunk_tokens`` tokens (a longer row is one range)."""
    n_rows = indptr.size - 1
    chunks, start = [], 0
    while start < n_rows:
        stop = int(np.searchsorted(indptr, indptr[start] + chunk_tokens, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        chunks.append((start, stop))
        start = stop
    return chunks


def _csr(tokenized, n_regions: int) -> sp.csr_matrix:
    """Tokenized sets as a 0/1 CSR matrix."""
    return sp.csr_matrix(
        (np.ones(tokenized.indices.size, np.float32), tokenized.indices, tokenized.indptr),
        shape=(len(tokenized.names), n_regions),
    )


def _coverage(tokenized) -> np.ndarray:
    """Share of each set's regions that overlap the universe (``nan`` for an empty set)."""
    return tokenized.qc()["frac_regions_in_universe"].to_numpy(np.float64)


# Models made from an AnnData by the tools (search, distances, evaluate), remembered per AnnData and key while its
# arrays are the same objects: the overlap index of a large universe is then built once, not at every query.
_EMBEDDINGS = PerObject()


def _embedding_of(adata: ad.AnnData, key: str) -> BEDSpaceModel:
    """The embedding trained into ``adata`` under ``key`` (no reference collection), cached per AnnData."""
    keys = Keys(key)
    keys.needs_training(adata)
    record = adata.uns[keys.record]
    fingerprint = (
        id(adata.varm[keys.region_vectors]),
        id(record["label_vectors"]),
        id(record["labels"]),
        id(record.get("annotator")),
        id(record.get("classifier")),
        id(adata.var),
    )
    cache = _EMBEDDINGS.get(adata)
    if cache is None:
        cache = {}
        _EMBEDDINGS.set(adata, cache)
    cached = cache.get(key)
    if cached is not None and cached[0] == fingerprint and cached[1].universe.same_as(adata.var):
        return cached[1]
    universe_record = record.get("universe") or adata.uns.get(TOKENIZE, {}).get("universe", {})
    model = BEDSpaceModel(
        Universe.from_anndata(adata, record=universe_record),
        np.asarray(adata.varm[keys.region_vectors]),
        LabelTable.from_frame(pd.DataFrame(record["labels"])),
        np.asarray(record["label_vectors"]),
        params=_plain(record.get("params", {})),
        loss=np.asarray(record.get("loss", []), dtype=np.float64),
        annotator=_read_annotator(record.get("annotator"), f"adata.uns[{keys.record!r}]['annotator']"),
        classifier=record.get("classifier"),
    )
    cache[key] = (fingerprint, model)
    return model


def searchable(adata: ad.AnnData, key: str = "bedspace") -> BEDSpaceModel:
    """The model of a trained AnnData with its sets as the reference, for the tools (no copy of ``.obs``)."""
    keys = Keys(key)
    model = _embedding_of(adata, key)
    vectors = adata.obsm[keys.set_vectors]
    cache = _EMBEDDINGS.get(adata)
    entry = cache.get(("reference", key))
    state = (id(vectors), id(adata.obs), adata.obs.shape, None if adata.isbacked else id(adata.X))
    if entry is not None and entry[0] == state and entry[1] is model:
        return entry[2]
    searchable_model = model.with_reference(ReferenceSets(adata.obs, np.asarray(vectors), _tokens_of(adata)))
    cache[("reference", key)] = (state, model, searchable_model)
    return searchable_model


def _tokens_of(adata: ad.AnnData, *, copy: bool = False) -> sp.csr_matrix | None:
    """The collection's tokens for the default annotator: ``X`` when in memory and sparse (a backed one stays on disk)."""
    if adata.isbacked or not sp.issparse(adata.X):
        return None
    X = adata.X.tocsr()
    return X.copy() if copy and X is adata.X else X


def _read_annotator(record, where) -> Annotator | None:
    """The annotator recorded at ``where`` (``None`` when there is none); a damaged record is an error naming it."""
    if record is None:
        return None
    try:
        return Annotator.from_dict(dict(record))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: the annotator record is damaged or from another version ({err})") from None


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a bedspace model (what ``save(overwrite=True)`` may replace)."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FileNotFoundError(
            f"not a bedspace model folder: {folder} {'is a file' if folder.exists() else 'does not exist'}"
        )
    if not path.exists():
        raise FileNotFoundError(f"not a bedspace model folder (no {MANIFEST}): {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a bedspace model (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format_version must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{folder} was written in model format {version} (by bedspace {manifest.get('bedspace_version')}); "
            f"this bedspace ({__version__}) reads formats 1 to {FORMAT_VERSION}: upgrade bedspace"
        )
    dim = manifest.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{path}: dim must be a whole number >= 1, got {dim!r}")
    return manifest


def _read(reader, path: Path):
    """Run ``reader(path)``; whatever goes wrong, the error names the file."""
    try:
        return reader(path)
    except (ValueError, OSError, EOFError, KeyError) as err:
        message = str(err)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None


def _read_vectors(path: Path, rows: int, dim, what: str) -> np.ndarray:
    vectors = _read(lambda p: np.load(p, allow_pickle=False), path)
    if vectors.ndim != 2 or vectors.shape[0] != rows or (dim is not None and vectors.shape[1] != dim):
        raise ValueError(f"{path}: shape {vectors.shape}, expected ({rows}, {dim}) for {rows} {what}")
    if vectors.dtype.kind != "f":
        raise ValueError(f"{path}: vectors must be floating-point numbers, got {vectors.dtype}")
    return vectors


def _load_format_1(cls, folder: Path, manifest: dict) -> BEDSpaceModel:
    """Folders written by bedspace 0.1 (no checksums; sets as CSV)."""
    names = manifest.get("files") or {}
    missing = [n for n in names.values() if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: model folder is incomplete, missing {missing}")
    universe = Universe.from_intervals(
        _read(read_intervals, folder / FILES["universe"]), name=str(manifest.get("universe_name", "universe")),
        chrom_sizes=manifest.get("chrom_sizes"),
    )  # fmt: skip
    labels = LabelTable.from_frame(pd.read_csv(folder / FILES["labels"], sep="\t", dtype=str, keep_default_na=False))
    dim = manifest.get("dim")
    reference = None
    if _V1_SET_FILES["sets"] in names.values():
        sets = _read(lambda p: pd.read_csv(p, index_col="name"), folder / _V1_SET_FILES["sets"])
        vectors = _read_vectors(folder / _V1_SET_FILES["set_vectors"], len(sets), dim, "sets")
        reference = ReferenceSets(sets, vectors)
    return cls(
        universe,
        _read_vectors(folder / FILES["region_vectors"], len(universe), dim, "universe regions"),
        labels,
        _read_vectors(folder / FILES["label_vectors"], len(labels), dim, "labels"),
        params=manifest.get("params") or {},
        loss=np.asarray(manifest.get("loss") or [], dtype=np.float64),
        reference=reference,
    )


def _fingerprint(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _plain(value):
    """Numpy scalars and arrays (as h5ad returns them) to plain Python, for JSON and comparisons."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value):
    plain = _plain(value)
    if plain is value:
        raise TypeError(f"cannot write {type(value).__name__} to model.json")
    return plain
