"""``BEDSpaceModel``: a trained embedding that travels without its AnnData — save, load, embed new sets."""

from __future__ import annotations

import json
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._atomic import atomic_folder
from ._engine.native import set_vectors
from ._labels import label_names, label_token
from ._regions import UniverseLike, load_universe
from ._similarity import unit_rows
from ._sources import RegionSets, resolve_sets
from ._version import __version__
from ._warnings import BEDSpaceWarning
from ._formats.bed import read_intervals, write_bed
from ._formats.starspace import read_starspace_tsv, region_tokens, vectors_from_symbols, write_starspace_tsv

FORMAT = "bedspace-model"
FORMAT_VERSION = 1
_FILES = {
    "manifest": "model.json",
    "universe": "universe.bed.gz",
    "regions": "region_vectors.npy",
    "labels": "labels.tsv",
    "label_vectors": "label_vectors.npy",
}
_SET_FILES = {"sets": "sets.csv.gz", "set_vectors": "set_vectors.npy"}  # present when the model carries its sets


class BEDSpaceModel:
    """A trained joint embedding: the universe, one vector per region and one per label.

    Make one from a trained AnnData (:meth:`from_anndata`) or a StarSpace ``.tsv`` (:meth:`from_starspace`);
    :meth:`save` it as a folder and :meth:`load` it anywhere; :meth:`embed` new BED files.

    Examples
    --------
    >>> model = bs.BEDSpaceModel.from_anndata(adata)  # doctest: +SKIP
    >>> model.save("model/")  # doctest: +SKIP
    >>> bs.BEDSpaceModel.load("model/").embed("query.bed.gz")  # doctest: +SKIP
    """

    def __init__(
        self,
        universe: pd.DataFrame,
        region_vectors: np.ndarray,
        labels: pd.DataFrame,
        label_vectors: np.ndarray,
        *,
        params: dict | None = None,
        universe_name: str = "universe",
        chrom_sizes: dict[str, int] | None = None,
        loss: np.ndarray | None = None,
        sets: pd.DataFrame | None = None,
        set_vectors: np.ndarray | None = None,
    ):
        if region_vectors.shape[0] != len(universe):
            raise ValueError(f"{region_vectors.shape[0]} region vectors for {len(universe)} universe regions")
        if label_vectors.shape[0] != len(labels):
            raise ValueError(f"{label_vectors.shape[0]} label vectors for {len(labels)} labels")
        if region_vectors.shape[1] != label_vectors.shape[1]:
            raise ValueError("region and label vectors differ in dimension")
        self._universe = universe[["chrom", "start", "end"]].copy()
        self._universe.attrs["name"] = universe_name
        self._region_vectors = np.ascontiguousarray(region_vectors, dtype=np.float32)
        self._labels = labels[["field", "value"]].astype(str).reset_index(drop=True)
        self._labels.index = label_names(self._labels)
        self._label_vectors = np.ascontiguousarray(label_vectors, dtype=np.float32)
        self.params = dict(params or {})
        self.universe_name = universe_name
        self.chrom_sizes = chrom_sizes
        self.loss = np.asarray(loss if loss is not None else [], dtype=np.float64)
        if (sets is None) != (set_vectors is None):
            raise ValueError("give both sets (metadata, indexed by name) and set_vectors, or neither")
        if sets is not None and len(sets) != len(set_vectors):
            raise ValueError(f"{len(set_vectors)} set vectors for {len(sets)} sets")
        self._sets = sets
        self._set_vectors = None if set_vectors is None else np.ascontiguousarray(set_vectors, dtype=np.float32)

    # -- what the model holds ---------------------------------------------------------------------------------
    @property
    def universe(self) -> pd.DataFrame:
        """Universe regions: ``chrom``, ``start``, ``end``, indexed ``chr1:100-200``."""
        return self._universe

    @property
    def region_vectors(self) -> np.ndarray:
        """One vector per universe region (regions × dim); 0 for regions the training never saw."""
        return self._region_vectors

    @property
    def labels(self) -> pd.DataFrame:
        """Label table: ``field``, ``value``, indexed ``field=value``; rows align with :attr:`label_vectors`."""
        return self._labels

    @property
    def label_vectors(self) -> np.ndarray:
        """One vector per label (labels × dim)."""
        return self._label_vectors

    @property
    def set_names(self) -> pd.Index | None:
        """Names of the region sets the model carries (its collection), or ``None``."""
        return None if self._sets is None else self._sets.index

    @property
    def set_metadata(self) -> pd.DataFrame | None:
        """Metadata of the carried region sets (rows align with :attr:`set_vectors`)."""
        return self._sets

    @property
    def set_vectors(self) -> np.ndarray | None:
        """Vectors of the carried region sets (sets × dim)."""
        return self._set_vectors

    @cached_property
    def unit_set_vectors(self) -> np.ndarray | None:
        """:attr:`set_vectors` scaled to length 1 (computed once; searches are matrix products with it)."""
        return None if self._set_vectors is None else unit_rows(self._set_vectors)

    @cached_property
    def unit_label_vectors(self) -> np.ndarray:
        """:attr:`label_vectors` scaled to length 1 (zero for a label no training set had)."""
        return unit_rows(self._label_vectors)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self._region_vectors.shape[1])

    def __repr__(self) -> str:
        carried = "" if self._sets is None else f", {len(self._sets)} region sets"
        return (
            f"BEDSpaceModel({len(self._universe):,} regions of {self.universe_name!r}, "
            f"{len(self._labels)} labels in {sorted(set(self._labels['field']))}{carried}, dim {self.dim})"
        )

    # -- from and to AnnData ----------------------------------------------------------------------------------
    @classmethod
    def from_anndata(cls, adata: ad.AnnData, key: str = "bedspace") -> BEDSpaceModel:
        """The model trained by :func:`bedspace.tl.train` into ``adata`` under ``key``, carrying its sets.

        The sets' names, ``.obs`` metadata and vectors (``.obsm["X_" + key]``) come along, so that the model
        alone answers all three searches.
        """
        if key not in adata.varm or key not in adata.uns or "label_vectors" not in adata.uns[key]:
            raise KeyError(
                f"no trained embedding under key {key!r}: run bs.tl.train(adata, labels=..., key_added={key!r})"
            )
        record = adata.uns[key]
        universe_info = adata.uns.get("bedspace", {}).get("universe", {})
        return cls(
            adata.var,
            np.asarray(adata.varm[key]),
            pd.DataFrame(record["labels"]),
            np.asarray(record["label_vectors"]),
            params=_plain(record.get("params", {})),
            universe_name=str(universe_info.get("name", "universe")),
            chrom_sizes=_plain(universe_info.get("chrom_sizes")) if "chrom_sizes" in universe_info else None,
            loss=np.asarray(record.get("loss", [])),
            sets=adata.obs.copy(),
            set_vectors=np.asarray(adata.obsm["X_" + key]),
        )

    def to_anndata(self, key: str = "bedspace") -> ad.AnnData:
        """The carried region sets as an AnnData laid out as :func:`bedspace.tl.train` leaves one.

        Sets × universe regions with an empty ``X`` (the model keeps vectors, not tokens); ``.obs`` the sets'
        metadata, ``.obsm["X_" + key]`` their vectors, ``.varm[key]`` the region vectors and ``.uns[key]`` the
        labels, label vectors, parameters and loss — so that :func:`bedspace.tl.distances`,
        :func:`bedspace.tl.search` and scanpy work on a loaded model.
        """
        if self._sets is None:
            raise ValueError("this model carries no region sets; make it with BEDSpaceModel.from_anndata(adata)")
        var = self._universe.copy()
        var.index = var.index.astype(str)
        adata = ad.AnnData(
            X=sp.csr_matrix((len(self._sets), len(var)), dtype=np.float32), obs=self._sets.copy(), var=var
        )
        adata.obsm["X_" + key] = self._set_vectors
        adata.varm[key] = self._region_vectors
        universe = {"name": self.universe_name, "n_regions": len(var)}
        if self.chrom_sizes:
            universe["chrom_sizes"] = self.chrom_sizes
        adata.uns[key] = {
            "universe": universe,
            "params": self.params,
            "labels": self._labels.copy(),
            "label_vectors": self._label_vectors,
            "loss": self.loss,
        }
        return adata

    # -- saving and loading -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model as a self-describing folder (no pickle), atomically.

        The folder holds ``model.json`` (format, bedspace version, parameters, universe name and chromosome
        sizes, loss), ``universe.bed.gz``, ``region_vectors.npy``, ``labels.tsv`` and ``label_vectors.npy``, and,
        when the model carries its region sets, ``sets.csv.gz`` (names and metadata) and ``set_vectors.npy``.
        An existing folder is replaced only with ``overwrite=True``.
        """
        folder = Path(folder)
        with atomic_folder(folder, overwrite=overwrite) as tmp:
            write_bed(self._universe, tmp / _FILES["universe"])
            np.save(tmp / _FILES["regions"], self._region_vectors, allow_pickle=False)
            self._labels.to_csv(tmp / _FILES["labels"], sep="\t", index=False)
            np.save(tmp / _FILES["label_vectors"], self._label_vectors, allow_pickle=False)
            if self._sets is not None:
                self._sets.to_csv(tmp / _SET_FILES["sets"], index_label="name")
                np.save(tmp / _SET_FILES["set_vectors"], self._set_vectors, allow_pickle=False)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "bedspace_version": __version__,
                "dim": self.dim,
                "n_regions": len(self._universe),
                "n_labels": len(self._labels),
                "universe_name": self.universe_name,
                "chrom_sizes": self.chrom_sizes,
                "params": self.params,
                "loss": self.loss.tolist(),
                "files": _FILES | (_SET_FILES if self._sets is not None else {}),
            }
            (tmp / _FILES["manifest"]).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> BEDSpaceModel:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        manifest_path = folder / _FILES["manifest"]
        if not manifest_path.exists():
            raise FileNotFoundError(f"not a bedspace model folder (no {_FILES['manifest']}): {folder}")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest_path}: not valid JSON ({err})") from None
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: not a bedspace model (format {manifest.get('format')!r})")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{folder} was written in model format {version} (by bedspace {manifest.get('bedspace_version')}); "
                f"this bedspace ({__version__}) reads format {FORMAT_VERSION} and older: upgrade bedspace"
            )
        missing = [name for name in manifest.get("files", _FILES).values() if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(f"{folder}: model folder is incomplete, missing {missing}")
        intervals = read_intervals(folder / _FILES["universe"])
        codes, categories = intervals.chrom_codes()
        universe = pd.DataFrame(
            {
                "chrom": pd.Categorical.from_codes(codes, categories=categories),
                "start": intervals.starts,
                "end": intervals.ends,
            }
        )
        labels = pd.read_csv(folder / _FILES["labels"], sep="\t", dtype=str, keep_default_na=False)
        carried = {}
        if _SET_FILES["sets"] in manifest.get("files", {}).values():
            sets = pd.read_csv(folder / _SET_FILES["sets"], index_col="name")
            sets.index = sets.index.astype(str)
            carried = {"sets": sets, "set_vectors": np.load(folder / _SET_FILES["set_vectors"], allow_pickle=False)}
        model = cls(
            universe,
            np.load(folder / _FILES["regions"], allow_pickle=False),
            labels,
            np.load(folder / _FILES["label_vectors"], allow_pickle=False),
            params=manifest.get("params", {}),
            universe_name=manifest.get("universe_name", "universe"),
            chrom_sizes=manifest.get("chrom_sizes"),
            loss=np.asarray(manifest.get("loss", [])),
            **carried,
        )
        if model.dim != manifest.get("dim", model.dim):
            raise ValueError(f"{folder}: vectors have dimension {model.dim}, model.json says {manifest['dim']}")
        return model

    # -- StarSpace interoperability ---------------------------------------------------------------------------
    @classmethod
    def from_starspace(cls, tsv: str | os.PathLike, *, universe: UniverseLike) -> BEDSpaceModel:
        """Load a model trained by the real StarSpace (its ``.tsv``) on a BEDspace training file.

        Region tokens (``chr1_100_200``) are matched to the universe's regions; labels are read from their
        ``__label__`` tokens (``__label__organ=blood`` as bedspace writes them, or plain ``__label__T_cell``,
        which becomes field ``label``).
        """
        symbols, vectors = read_starspace_tsv(tsv)
        uni = load_universe(universe)
        region_vectors, label_vectors, table = vectors_from_symbols(symbols, vectors, uni.var, None)
        return cls(
            uni.var,
            region_vectors,
            table,
            label_vectors,
            params={"backend": "starspace", "source": str(tsv)},
            universe_name=uni.name,
            chrom_sizes=uni.chrom_sizes,
        )

    def to_starspace(self, path: str | os.PathLike) -> Path:
        """Write the model as a StarSpace ``.tsv`` (regions with a vector, then labels), readable by StarSpace."""
        tokens = region_tokens(self._universe)
        known = np.flatnonzero(np.any(self._region_vectors != 0, axis=1))
        symbols = [tokens[i] for i in known] + [
            label_token(f, v) for f, v in self._labels[["field", "value"]].itertuples(index=False)
        ]
        return write_starspace_tsv(symbols, np.vstack([self._region_vectors[known], self._label_vectors]), path)

    # -- embedding new sets -----------------------------------------------------------------------------------
    def has_universe(self, regions: pd.DataFrame) -> bool:
        """Whether ``regions`` (``start``, ``end`` columns, e.g. a ``.var``) are this model's universe, in order."""
        return len(regions) == len(self._universe) and all(
            np.array_equal(regions[c].to_numpy(), self._universe[c].to_numpy()) for c in ("start", "end")
        )

    def tokenize(self, sets: RegionSets | pd.DataFrame | ad.AnnData, **kwargs) -> ad.AnnData:
        """Tokenize region sets onto the model's universe (an AnnData on this universe is checked and returned)."""
        from .pp._tokenize import tokenize_onto

        if isinstance(sets, ad.AnnData):
            if not self.has_universe(sets.var):
                raise ValueError(
                    "the AnnData is not tokenized on this model's universe; tokenize its BED files with "
                    "model.tokenize(...) or bs.pp.tokenize(files, model.universe)"
                )
            return sets
        if isinstance(sets, pd.DataFrame):
            sets = {"query": sets}
        uni, index = self._prepared_universe
        return tokenize_onto(resolve_sets(sets), uni, index, **kwargs)

    @cached_property
    def _prepared_universe(self):
        """The universe and its overlap index, built on first use and kept: queries then cost only their reading."""
        from .pp._tokenize import universe_index

        uni = load_universe(self._universe, chrom_sizes=self.chrom_sizes)
        return uni, universe_index(uni)

    def embed(self, sets: RegionSets | pd.DataFrame | ad.AnnData) -> np.ndarray:
        """Vectors of region sets: the normalised sum of their region vectors, as in training.

        Parameters
        ----------
        sets
            An AnnData tokenized on this model's universe, BED path(s), a folder, a dict of interval frames, or
            one DataFrame/PyRanges of intervals (one set).

        Returns
        -------
        sets × dim array (float32), rows in the order of the sets. A set that overlaps no region the model knows
        gets a zero vector and a warning naming it.
        """
        adata = self.tokenize(sets)
        X = adata.X.tocsr()
        vectors = set_vectors(self._region_vectors, X.indptr.astype(np.int64), X.indices)
        unknown = adata.obs_names[~np.any(vectors != 0, axis=1)].tolist()
        if unknown:
            warnings.warn(
                f"{len(unknown)} set(s) overlap no region the model knows and get a zero vector: {unknown[:10]}",
                BEDSpaceWarning,
                stacklevel=2,
            )
        return vectors

    # -- searching --------------------------------------------------------------------------------------------
    def search(
        self,
        query,
        search_type: Literal["r2l", "l2r", "r2r"] = "l2r",
        top_k: int = 10,
        field: str | None = None,
    ) -> pd.DataFrame:
        """Search the joint space: see :func:`bedspace.tl.search` for the query forms and the result."""
        from ._search import run_search

        return run_search(self, query, search_type=search_type, top_k=top_k, field=field)


def _plain(value):
    """Numpy scalars and arrays (as h5ad returns them) to plain Python, for JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_default(value):
    plain = _plain(value)
    if plain is value:
        raise TypeError(f"cannot write {type(value).__name__} to model.json")
    return plain
