"""The reference collection a model carries: its sets' names, metadata, vectors, tokens, and their annotator.

The collection owns its annotator (:class:`~bedspace.annotate.RegionAnnotator`): fitted once on its sets
(:func:`bedspace.tl.train`), kept with them (``AnnData.uns``, a model folder) and checked against their tokens once
when it is bound to them. The tokens may live in memory, memory-mapped in a model folder or in an ``.h5ad`` file
opened backed: only the rows a search needs are read.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np
import pandas as pd

from ._index import ApproximateIndex
from ._labels import LabelTable
from ._logging import info
from ._similarity import unit_rows
from .annotate import RegionAnnotator, TokenMatrix


class ReferenceSets:
    """Region sets searchable by ``l2r`` and ``r2r``: metadata (index = set names), one vector per set, tokens.

    Parameters
    ----------
    metadata
        One row per set, indexed by set name; or a function that reads it (a model folder reads it on first use).
    vectors
        Set vectors (sets × dim); may be memory-mapped.
    tokens
        Sets × universe regions (a scipy matrix, an AnnData's backed ``X`` or a :class:`~bedspace.annotate.TokenMatrix`),
        or ``None``: without, the default annotator cannot run (only the embedding searches).
    annotator
        The default annotator fitted on these sets (bound to ``tokens``), or ``None``.
    n_sets
        The number of sets, when ``metadata`` is a function.
    """

    def __init__(
        self,
        metadata: pd.DataFrame | Callable[[], pd.DataFrame],
        vectors: np.ndarray,
        tokens=None,
        *,
        annotator: RegionAnnotator | None = None,
        n_sets: int | None = None,
    ):
        self._read_metadata = metadata if callable(metadata) else None
        n = len(metadata) if n_sets is None else int(n_sets)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ValueError(f"{vectors.shape[0] if vectors.ndim else 0} set vectors for {n} sets")
        if vectors.dtype != np.float32:
            vectors = np.asarray(vectors, dtype=np.float32)
        if tokens is not None:
            tokens = TokenMatrix.of(tokens)
            if tokens.n_sets != n:
                raise ValueError(f"tokens must have one row per set ({n}), got {tokens.n_sets}")
            if tokens.matrix is not None and tokens.matrix.nnz == 0:  # an AnnData without its tokens carries none
                tokens = None
        if not isinstance(vectors, np.memmap):  # a model folder's are checked by their checksum
            check_finite(vectors, "set vectors")
        self._n = n
        self._vectors = vectors
        self._tokens = tokens
        self._annotator = annotator
        if not callable(metadata):
            self._metadata = _named(metadata)

    @cached_property
    def _metadata(self) -> pd.DataFrame:
        metadata = _named(self._read_metadata())
        if len(metadata) != self._n:
            raise ValueError(f"the metadata has {len(metadata)} rows for {self._n} sets")
        return metadata

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
    def tokens(self) -> TokenMatrix | None:
        """Sets × universe regions, readable by rows, or ``None`` when not carried."""
        return self._tokens

    @cached_property
    def unit_vectors(self) -> np.ndarray:
        """Vectors scaled to length 1 (computed once; searches are matrix products with it)."""
        return unit_rows(np.asarray(self._vectors))

    @cached_property
    def approximate_index(self) -> ApproximateIndex:
        """An approximate nearest-neighbour index of :attr:`unit_vectors` (``approximate=True`` searches).

        Built on first use and kept while this object lives; not saved with a model (7 s for 10⁶ sets).
        """
        info(f"building an approximate nearest-neighbour index of {len(self):,} set vectors")
        return ApproximateIndex(self.unit_vectors)

    def __len__(self) -> int:
        return self._n

    def position(self, name: str) -> int | None:
        """Row of the set called ``name``, or ``None``."""
        try:
            return int(self.names.get_loc(name))
        except KeyError:
            return None

    # -- the annotator ----------------------------------------------------------------------------------------
    @property
    def annotator(self) -> RegionAnnotator | None:
        """The default annotator fitted on these sets, or ``None``."""
        return self._annotator

    def label_codes(self, labels: LabelTable) -> dict[str, np.ndarray]:
        """Per label field of ``labels`` that the metadata has, each set's label column (-1: none)."""
        return {f: labels.codes(f, self.metadata[f]) for f in labels.fields if f in self.metadata.columns}

    def fit_annotator(self, labels: LabelTable, *, chromosomes: np.ndarray | None = None, **options) -> RegionAnnotator:
        """Fit the default annotator on these sets' tokens and their labels in ``labels``' fields; keep it.

        ``options`` go to :class:`~bedspace.annotate.RegionAnnotator`. The share of each set's regions in the
        universe (``frac_regions_in_universe``, recorded by :func:`bedspace.pp.tokenize`) sets the domain;
        ``chromosomes`` (per universe region) lets it flag queries on one chromosome.
        """
        if self._tokens is None:
            raise ValueError(
                "the default annotator compares a query's regions with the reference sets', and these sets carry no "
                "tokens (a model from StarSpace?): use method='embedding'"
            )
        codes = self.label_codes(labels)
        if not codes:
            raise KeyError(f"the sets' metadata has none of the label fields {labels.fields} to fit the annotator on")
        names = {f: labels.names[labels.in_field(f)].tolist() for f in codes}
        column = "frac_regions_in_universe"
        coverage = self.metadata[column].to_numpy(np.float64) if column in self.metadata.columns else None
        info(f"fitting the default annotator on {len(self):,} reference sets")
        self._annotator = RegionAnnotator(**options).fit(
            self._tokens, codes, names, coverage=coverage, chromosomes=chromosomes
        )
        return self._annotator

    def bind_annotator(self, record, labels: LabelTable, **options) -> RegionAnnotator | None:
        """The annotator ``record`` holds, bound to these sets' tokens; refitted when they are not its sets.

        Without a record (an older collection, or one trained without calibration), an annotator without
        calibration is fitted, as long as the sets carry tokens and labels. ``options`` go to the refit.
        """
        if self._tokens is None:
            return None
        codes = self.label_codes(labels)
        if record is not None:
            try:
                self._annotator = RegionAnnotator.from_record(record, self._tokens)
                if codes.keys() == set(self._annotator.fields_) and all(
                    np.array_equal(c, self._annotator.codes_[f]) for f, c in codes.items()
                ):
                    return self._annotator
                info("the kept annotator was fitted on other labels than the sets carry now: fitting it again")
            except ValueError as err:
                info(f"the kept annotator does not fit these sets ({err}): fitting it again")
            return self.fit_annotator(labels, **options)
        if not codes:
            return None
        return self.fit_annotator(labels, calibrate=False, **options)


def _named(metadata: pd.DataFrame) -> pd.DataFrame:
    """``metadata`` indexed by unique string names."""
    names = pd.Index(metadata.index.astype(str))
    if names.has_duplicates:
        raise ValueError(f"set names must be unique; repeated: {sorted(set(names[names.duplicated()]))[:10]}")
    return metadata.set_axis(names)


def check_finite(values: np.ndarray, what: str) -> None:
    """Refuse NaN and infinite values, saying where the first one is (a diverged training, a damaged file)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)[0])
        raise ValueError(
            f"{what} hold {int(bad.sum())} non-finite value(s) (nan or inf), first in row {row}: the training "
            "diverged (lower the learning rate) or the vectors were damaged"
        )
