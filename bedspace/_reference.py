"""The reference collection a model carries: the names, metadata and vectors of the sets it can return."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._index import ApproximateIndex
from ._logging import info
from ._quiet import quiet_anndata_io
from ._similarity import unit_rows


class ReferenceSets:
    """Region sets searchable by ``l2r`` and ``r2r``: metadata (index = set names) and one vector per set.

    With ``tokens`` (sets × universe regions, sparse: the collection's ``X``), the default annotator also
    compares a query's regions with the sets' (overlap and enrichment evidence); without, it has the embedding
    only.
    """

    def __init__(self, metadata: pd.DataFrame, vectors: np.ndarray, tokens: sp.spmatrix | None = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(metadata) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0] if vectors.ndim else 0} set vectors for {len(metadata)} sets")
        if tokens is not None:
            if not sp.issparse(tokens) or tokens.shape[0] != len(metadata):
                raise ValueError(f"tokens must be a sparse matrix with one row per set ({len(metadata)})")
            tokens = tokens if tokens.format == "csr" else tokens.tocsr()
            if tokens.nnz == 0:  # an AnnData written without its tokens (an empty X) carries none
                tokens = None
        check_finite(vectors, "set vectors")
        names = pd.Index(metadata.index.astype(str))
        if names.has_duplicates:
            raise ValueError(f"set names must be unique; repeated: {sorted(set(names[names.duplicated()]))[:10]}")
        self._metadata = metadata.set_axis(names)
        self._vectors = np.ascontiguousarray(vectors)
        self._tokens = tokens

    @property
    def names(self) -> pd.Index:
        """Set names."""
        return self._metadata.index

    @property
    def metadata(self) -> pd.DataFrame:
        """Metadata, one row per set (do not modify in place)."""
        return self._metadata

    @property
    def vectors(self) -> np.ndarray:
        """Set vectors (sets × dim)."""
        return self._vectors

    @property
    def tokens(self) -> sp.csr_matrix | None:
        """Sets × universe regions (nonzero: the set has the region), or ``None`` when not carried."""
        return self._tokens

    @cached_property
    def unit_vectors(self) -> np.ndarray:
        """Vectors scaled to length 1 (computed once; searches are matrix products with it)."""
        return unit_rows(self._vectors)

    @cached_property
    def approximate_index(self) -> ApproximateIndex:
        """An approximate nearest-neighbour index of :attr:`unit_vectors` (``approximate=True`` searches).

        Built on first use and kept while this object lives; not saved with a model. The first build in a Python
        process also compiles pynndescent's kernels (about 40 s on a busy 2-core machine).
        """
        info(f"building an approximate nearest-neighbour index of {len(self):,} set vectors (pynndescent)")
        return ApproximateIndex(self.unit_vectors)

    def __len__(self) -> int:
        return len(self._metadata)

    def position(self, name: str) -> int | None:
        """Row of the set called ``name``, or ``None``."""
        try:
            return int(self.names.get_loc(name))
        except KeyError:
            return None

    def to_anndata(self) -> ad.AnnData:
        """As an AnnData: ``X`` the tokens (none when not carried), ``.obs`` the metadata, ``.obsm["X"]`` the vectors."""
        return ad.AnnData(X=self._tokens, obs=self._metadata.copy(), obsm={"X": self._vectors})

    def save(self, path: str | os.PathLike) -> None:
        """Write as ``.h5ad`` (keeps every dtype: categoricals, numbers, booleans; never a pickle)."""
        with quiet_anndata_io():
            self.to_anndata().write_h5ad(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceSets:
        """Read what :meth:`save` wrote; an unreadable file is an error naming it."""
        path = Path(path)
        try:
            with quiet_anndata_io():
                adata = ad.read_h5ad(path)
            vectors = np.asarray(adata.obsm["X"])
            tokens = adata.X if sp.issparse(adata.X) else None
        except Exception as err:  # h5py and anndata raise many kinds; the user needs the file's name
            raise ValueError(f"{path}: not a readable reference collection ({type(err).__name__}: {err})") from None
        return cls(adata.obs, vectors, tokens)


def check_finite(values: np.ndarray, what: str) -> None:
    """Refuse NaN and infinite values, saying where the first one is (a diverged training, a damaged file)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)[0])
        raise ValueError(
            f"{what} hold {int(bad.sum())} non-finite value(s) (nan or inf), first in row {row}: the training "
            "diverged (lower the learning rate) or the vectors were damaged"
        )
