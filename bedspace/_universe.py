"""The universe: the reference regions every region set is mapped onto. The only place that knows what one is.

A :class:`Universe` holds the regions (named ``chr1:100-200``), the chromosome sizes when known and a name;
it is built from any accepted source (a BED path, a DataFrame/PyRanges, the ``.var`` of a tokenized AnnData),
compares itself with another (:meth:`Universe.same_as`), owns its overlap index (built once, on first use) and
tokenizes region sets into region rows without building an AnnData.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd

from ._cache import PerObject
from ._formats.bed import Intervals, encoded_names, read_intervals, write_int
from ._formats.starspace import region_token
from ._keys import TOKENIZE
from ._lazy import is_anndata
from ._overlap import SetTokens, UniverseIndex
from ._parallel import parallel_map
from ._sources import Source, load_source
from ._version import __version__
from ._warnings import excerpt, warn

if TYPE_CHECKING:
    import anndata as ad

ChromSizes = str | os.PathLike | Mapping[str, int] | pd.Series
#: Where :func:`bedspace.pp.tokenize` records the universe of a collection.


@dataclass(frozen=True)
class TokenizedSets:
    """Region sets as rows of universe regions (CSR arrays), with per-set QC counts."""

    names: list[str]
    indptr: np.ndarray  # int64, n_sets + 1
    indices: np.ndarray  # int32 universe rows, sorted within each set
    n_regions: np.ndarray  # intervals in each set
    n_in_universe: np.ndarray  # intervals overlapping at least one universe region

    @property
    def n_tokens(self) -> np.ndarray:
        """Universe regions each set overlaps."""
        return np.diff(self.indptr)

    def qc(self) -> pd.DataFrame:
        """Per set: ``n_regions``, ``n_tokens`` and ``frac_regions_in_universe`` (NaN for an empty set)."""
        hit = self.n_in_universe.astype(np.float64)
        fraction = np.divide(hit, self.n_regions, out=np.full(hit.size, np.nan), where=self.n_regions > 0)
        return pd.DataFrame(
            {"n_regions": self.n_regions, "n_tokens": self.n_tokens, "frac_regions_in_universe": fraction},
            index=pd.Index(self.names),
        )

    def to_anndata(
        self, universe: Universe, *, obs: pd.DataFrame | None = None, params: Mapping | None = None
    ) -> ad.AnnData:
        """The collection as an AnnData: sets × universe regions (0/1), QC in ``.obs``, the universe in ``.var``."""
        index_dtype = np.int32 if self.indptr[-1] < np.iinfo(np.int32).max else np.int64
        import scipy.sparse as sp

        X = sp.csr_matrix(
            (
                np.ones(self.indices.size, np.float32),
                self.indices.astype(index_dtype, copy=False),
                self.indptr.astype(index_dtype),
            ),
            shape=(len(self.names), len(universe)),
        )
        X.has_sorted_indices = True
        obs, var, uns = self.annotations(universe, obs=obs, params=params)
        import anndata as ad

        adata = ad.AnnData(X=X, obs=obs, var=var)
        adata.uns[TOKENIZE] = uns
        return adata

    def annotations(
        self,
        universe: Universe,
        *,
        obs: pd.DataFrame | None = None,
        params: Mapping | None = None,
        n_sets: np.ndarray | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """What surrounds ``X`` in the collection's AnnData: ``obs`` (with QC), ``var`` and ``uns[TOKENIZE]``.

        ``n_sets`` (sets per universe region) is counted from :attr:`indices` unless given: an out-of-core writer
        (:mod:`bedspace._ondisk`) counts it chunk by chunk and passes sets that hold no indices.
        """
        obs = pd.DataFrame(index=pd.Index(self.names)) if obs is None else obs
        var = universe.to_var()
        var["n_sets"] = (
            np.bincount(self.indices, minlength=len(var)) if n_sets is None else np.asarray(n_sets)
        ).astype(np.int64)
        uns = {
            "universe": universe.record(),
            "tokenize": {"params": {**(params or {}), "overlap": "bedtools intersect -u (half-open, >= 1 bp)"}},
            "version": __version__,
        }
        return _with_qc(obs, self.qc()), var, uns

    @classmethod
    def from_results(cls, names: list[str], results: Sequence[SetTokens]) -> TokenizedSets:
        """Gather the tokens of sets (one :class:`SetTokens` each, in order) into CSR arrays."""
        lengths = np.fromiter((r.tokens.size for r in results), dtype=np.int64, count=len(results))
        indptr = np.zeros(len(results) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = (
            np.concatenate([r.tokens for r in results]).astype(np.int32, copy=False)
            if results
            else np.zeros(0, np.int32)
        )
        n_regions = np.array([r.n_regions for r in results], dtype=np.int64)
        hit = np.array([r.n_regions_in_universe for r in results], dtype=np.int64)
        return cls(list(names), indptr, indices, n_regions, hit)


class Universe:
    """Reference regions: ``chrom`` (categorical), ``start``, ``end`` (int64), named ``chr1:100-200``.

    Parameters
    ----------
    regions
        A frame with ``chrom``, ``start`` and ``end`` columns; regions are named from them, whatever its index.
    name
        A name for the universe (recorded with results).
    chrom_sizes
        Chromosome sizes, when known.
    assembly
        The genome build of its coordinates (``hg19``, ``hg38``…), when known.
    """

    def __init__(
        self,
        regions: pd.DataFrame,
        *,
        name: str = "universe",
        chrom_sizes: Mapping[str, int] | None = None,
        assembly: str | None = None,
    ):
        missing = [c for c in ("chrom", "start", "end") if c not in regions.columns]
        if missing:
            raise ValueError(f"universe {name!r}: no {missing} column(s); columns are {list(regions.columns)}")
        if len(regions) == 0:
            raise ValueError(f"universe {name!r} has no regions")
        chrom = regions["chrom"]
        chrom = chrom if isinstance(chrom.dtype, pd.CategoricalDtype) else chrom.astype(str).astype("category")
        self._chrom = chrom.reset_index(drop=True)
        self._starts = _integers(regions["start"], f"universe {name!r}, column start")
        self._ends = _integers(regions["end"], f"universe {name!r}, column end")
        self.name = str(name)
        self.chrom_sizes = None if chrom_sizes is None else {str(k): int(v) for k, v in dict(chrom_sizes).items()}
        self.assembly = None if assembly is None else str(assembly)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, universe: UniverseLike, *, chrom_sizes: ChromSizes | None = None) -> Universe:
        """A universe from a BED path, a DataFrame/PyRanges, an AnnData (its ``.var``), or a Universe."""
        sizes = read_chrom_sizes(chrom_sizes) if chrom_sizes is not None else None
        if isinstance(universe, Universe):
            return universe if sizes is None else universe.with_chrom_sizes(sizes)
        if is_anndata(universe):
            found = cls.from_anndata(universe)
            return found if sizes is None else found.with_chrom_sizes(sizes)
        if isinstance(universe, pd.DataFrame):
            intervals = Intervals.from_frame(universe, source="universe")
            name = str(universe.attrs.get("name", "universe"))
            if sizes is None and universe.attrs.get("chrom_sizes") is not None:
                sizes = read_chrom_sizes(universe.attrs["chrom_sizes"])
        elif isinstance(universe, str | os.PathLike):
            intervals = read_intervals(universe)
            name = Path(universe).name
        else:
            raise TypeError(
                f"universe must be a BED path, a DataFrame/PyRanges or an AnnData; got {type(universe).__name__}"
            )
        return cls.from_intervals(intervals, name=name, chrom_sizes=sizes)

    @classmethod
    def from_intervals(cls, intervals: Intervals, *, name: str, chrom_sizes=None) -> Universe:
        """From parsed intervals; exact duplicate regions are kept once, with a warning."""
        if len(intervals) == 0:
            raise ValueError(f"{name}: the universe has no regions")
        codes, categories = intervals.chrom_codes()
        duplicated = _duplicated(codes, intervals.starts, intervals.ends)
        if duplicated.any():
            warn(
                f"{name}: {int(duplicated.sum())} universe regions are exact duplicates of earlier ones; "
                "each distinct region is kept once"
            )
        keep = ~duplicated
        chrom = pd.Categorical.from_codes(codes[keep], categories=categories)
        starts, ends = intervals.starts[keep].astype(np.int64), intervals.ends[keep].astype(np.int64)
        frame = pd.DataFrame({"chrom": chrom, "start": starts, "end": ends})  # named by the constructor
        return cls(frame, name=name, chrom_sizes=chrom_sizes)

    @classmethod
    def from_anndata(cls, adata: ad.AnnData, *, record: Mapping | None = None) -> Universe:
        """The universe of a tokenized collection: its ``.var``, named and sized as ``record`` (or ``.uns``) says.

        The result is remembered for this AnnData (while ``.var`` stays the same), so the overlap index of a
        large universe is built once however many queries follow.
        """
        info = record if record is not None else adata.uns.get(TOKENIZE, {}).get("universe", {})
        name = str(info.get("name", "universe"))
        sizes = info.get("chrom_sizes")
        sizes = None if sizes is None else {str(k): int(v) for k, v in dict(sizes).items()}
        assembly = None if info.get("assembly") is None else str(info["assembly"])
        cached = _ANNDATA_UNIVERSES.get(adata)
        if (
            cached is not None
            and (cached.name, cached.chrom_sizes, cached.assembly) == (name, sizes, assembly)
            and cached.same_as(adata.var)
        ):
            return cached
        missing = [c for c in ("chrom", "start", "end") if c not in adata.var.columns]
        if missing:
            raise ValueError(
                f"this AnnData has no {missing} column(s) in .var, so it is not a tokenized collection; make one "
                "with bs.pp.tokenize"
            )
        universe = cls(adata.var, name=name, chrom_sizes=sizes, assembly=assembly)
        _ANNDATA_UNIVERSES.set(adata, universe)
        return universe

    def with_chrom_sizes(self, chrom_sizes: Mapping[str, int]) -> Universe:
        """The same regions with these chromosome sizes."""
        other = copy.copy(self)  # the same arrays and whatever was computed from them (names, index): not again
        other.chrom_sizes = {str(k): int(v) for k, v in dict(chrom_sizes).items()}
        return other

    def with_assembly(self, assembly: str | None) -> Universe:
        """The same regions recorded as coordinates of the genome build ``assembly``."""
        if assembly == self.assembly:
            return self
        other = copy.copy(self)
        other.assembly = None if assembly is None else str(assembly)
        return other

    # -- what it holds ----------------------------------------------------------------------------------------
    @cached_property
    def _regions(self) -> pd.DataFrame:
        # named on first use: spelling half a million names is most of the time a model folder takes to open
        regions = pd.DataFrame(
            {"chrom": self._chrom.to_numpy(), "start": self._starts, "end": self._ends},
            index=region_names(self._chrom, self._starts, self._ends),
        )
        regions["chrom"] = regions["chrom"].astype(self._chrom.dtype)
        return regions

    @property
    def regions(self) -> pd.DataFrame:
        """``chrom``, ``start``, ``end``, indexed ``chr1:100-200`` (do not modify in place)."""
        return self._regions

    @property
    def names(self) -> pd.Index:
        """Region names, ``chr1:100-200``."""
        return self._regions.index

    @property
    def chromosome_codes(self) -> np.ndarray:
        """Per region, its chromosome's code (position among the chromosome names)."""
        return self._chrom.cat.codes.to_numpy()

    def __len__(self) -> int:
        return int(self._starts.size)

    def __repr__(self) -> str:
        return f"Universe({self.name!r}, {len(self):,} regions on {self._regions['chrom'].nunique()} chromosomes)"

    def to_var(self) -> pd.DataFrame:
        """A copy of the regions, ready to be an AnnData's ``.var``."""
        return self._regions.copy()

    def record(self) -> dict:
        """What results record about the universe (plain values that survive ``.h5ad`` and JSON)."""
        info: dict = {"name": self.name, "n_regions": len(self)}
        if self.chrom_sizes is not None:
            info["chrom_sizes"] = dict(self.chrom_sizes)
        if self.assembly is not None:
            info["assembly"] = self.assembly
        info["non_overlapping"] = self.index.non_overlapping
        return info

    @cached_property
    def region_tokens(self) -> list[str]:
        """StarSpace tokens of the regions (``chr1_100_200``), in order."""
        return [
            region_token(c, s, e)
            for c, s, e in zip(
                self._regions["chrom"].astype(str), self._regions["start"].tolist(), self._regions["end"].tolist(),
                strict=True,
            )
        ]  # fmt: skip

    # -- comparing --------------------------------------------------------------------------------------------
    def same_as(self, other: Universe | pd.DataFrame) -> bool:
        """Whether ``other`` has the same regions in the same order: chromosome, start and end."""
        return self.difference(other) is None

    def difference(self, other: Universe | pd.DataFrame) -> str | None:
        """How ``other`` differs from this universe (the first difference, in words), or ``None``."""
        theirs = other.regions if isinstance(other, Universe) else other
        if len(theirs) != len(self):
            return f"{len(theirs):,} regions instead of {len(self):,}"
        for column in ("start", "end"):
            mismatch = np.flatnonzero(theirs[column].to_numpy() != (self._starts if column == "start" else self._ends))
            if mismatch.size:
                return self._describe(theirs, int(mismatch[0]), f"{column} differs")
        mismatch = np.flatnonzero(_chrom_codes(theirs["chrom"], self._chrom) != self._chrom_codes)
        if mismatch.size:
            return self._describe(theirs, int(mismatch[0]), "chromosome differs")
        return None

    def check_same(self, other: Universe | pd.DataFrame, *, what: str) -> None:
        """Raise a ValueError naming ``what`` unless ``other`` is this universe."""
        difference = self.difference(other)
        if difference is not None:
            raise ValueError(f"{what} is not on the universe {self.name!r} ({difference})")

    def _describe(self, theirs: pd.DataFrame, row: int, how: str) -> str:
        mine = self._regions.iloc[row]
        other = theirs.iloc[row]
        return (
            f"{how} at region {row}: {other['chrom']}:{other['start']}-{other['end']} instead of "
            f"{mine['chrom']}:{mine['start']}-{mine['end']}"
        )

    @cached_property
    def _chrom_codes(self) -> np.ndarray:
        return np.asarray(self._chrom.cat.codes, dtype=np.int64)

    # -- tokenizing -------------------------------------------------------------------------------------------
    @cached_property
    def index(self) -> UniverseIndex:
        """The overlap index (built on first use, then kept)."""
        return UniverseIndex(self._chrom.array, self._starts, self._ends)

    def tokenize(
        self, named: Sequence[tuple[str, Source]], *, n_jobs: int | Executor | None = None, warn: bool = True
    ) -> TokenizedSets:
        """Read and tokenize named region sets (in parallel); warns about empty and foreign sets."""
        index = self.index
        results = parallel_map(_TokenizeOne(index), list(named), n_jobs=n_jobs, desc="tokenizing")
        names = [name for name, _ in named]
        if warn:
            self._warn_about(names, results)
        return TokenizedSets.from_results(names, results)

    def _warn_about(self, names: list[str], results: list[SetTokens]) -> None:
        self.warn_unusable(*unusable_sets(names, results))

    def warn_unusable(
        self, empty: Sequence[str], foreign: Sequence[str], misspelled: Mapping[str, Sequence] | None = None
    ) -> None:
        """Warn about the sets whose intervals (all or some) get no tokens, naming them.

        ``empty``: sets with no intervals; ``foreign``: sets on none of the universe's chromosomes; ``misspelled``:
        per set, its chromosomes that the universe spells otherwise (:attr:`SetTokens.misspelled`), whether or
        not it shares other chromosomes with the universe (a file mixing ``chr1`` and ``1``).
        """
        misspelled = misspelled or {}
        if empty:
            warn(f"{len(empty)} region set(s) have no intervals and get no tokens: {list(empty[:10])}")
        if foreign:
            spelled = {name: misspelled[name] for name in foreign if name in misspelled}
            warn(
                f"{len(foreign)} region set(s) share no chromosome name with the universe {self.name!r} (it has "
                f"{list(self._chrom.cat.categories[:5])}...; is it 'chr1' in one and '1' in the "
                f"other, or another genome?): {list(foreign[:10])}"
                + (f"; the universe spells their chromosomes otherwise: {_spellings(spelled)}" if spelled else "")
            )
        partly = {name: found for name, found in misspelled.items() if name not in set(foreign)}
        if partly:
            warn(
                f"{len(partly)} region set(s) name some chromosomes otherwise than the universe {self.name!r} does "
                f"(by case or a 'chr' prefix), and their intervals there get no tokens: {_spellings(partly)}; "
                "rename them as the universe spells them"
            )


def _spellings(misspelled: Mapping[str, Sequence]) -> str:
    """``'a.bed': 'Chr2L' (the universe's 'chr2L', 120 intervals), ...`` for the first ten sets."""
    parts = []
    for name, found in list(misspelled.items())[:10]:
        chroms = ", ".join(f"{c!r} (the universe's {u!r}, {n:,} intervals)" for c, u, n in list(found)[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        parts.append(f"{name!r}: {chroms}{more}")
    return "; ".join(parts) + (f"; and {len(misspelled) - 10} more set(s)" if len(misspelled) > 10 else "")


def unusable_sets(names: Sequence[str], results: Sequence[SetTokens]) -> tuple[list[str], list[str], dict[str, tuple]]:
    """The sets with no intervals, those on none of the universe's chromosomes, and the misspelled chromosomes of each."""
    empty = [name for name, r in zip(names, results, strict=True) if r.n_regions == 0]
    foreign = [name for name, r in zip(names, results, strict=True) if not r.chromosomes_shared]
    misspelled = {name: r.misspelled for name, r in zip(names, results, strict=True) if r.misspelled}
    return empty, foreign, misspelled


#: What functions accept as a universe.
UniverseLike = "Universe | str | os.PathLike | pd.DataFrame | ad.AnnData"

# A universe made from an AnnData's .var, remembered per AnnData (weakly) and reused while .var is the same object.
_ANNDATA_UNIVERSES = PerObject()


@dataclass(frozen=True)
class _TokenizeOne:
    """Read one region set and overlap it with the universe (a picklable callable for any executor)."""

    index: UniverseIndex

    def __call__(self, item: tuple[str, Source]) -> SetTokens:
        return self.index.tokenize(load_source(*item))


def region_names(chrom, start: np.ndarray, end: np.ndarray) -> pd.Index:
    """``chr1:100-200`` names (the SnapATAC2 convention)."""
    categorical = pd.Categorical(chrom) if isinstance(getattr(chrom, "dtype", None), pd.CategoricalDtype) else None
    start, end = np.asarray(start), np.asarray(end)
    if (
        categorical is not None
        and (categorical.codes >= 0).all()
        and start.dtype.kind in "iu"
        and end.dtype.kind in "iu"
    ):
        names = [str(c) for c in categorical.categories]
        if (start.size == 0 or min(start.min(), end.min()) >= 0) and not any("\n" in c for c in names):
            # the usual case, spelled by numba into one buffer: a Python f-string per region costs 2-3x more, and
            # loading a universe is serial work in every tokenize call
            text = _spell_regions(
                *encoded_names(names), categorical.codes.astype(np.int64), start.astype(np.int64), end.astype(np.int64)
            )
            return pd.Index(text.tobytes().decode().split("\n") if start.size else [])
    chrom = np.asarray(chrom, dtype=object).astype(str).tolist()
    return pd.Index([f"{c}:{s}-{e}" for c, s, e in zip(chrom, start.tolist(), end.tolist(), strict=True)])


@numba.njit(cache=True, nogil=True)
def _spell_regions(names, name_bounds, codes, starts, ends):
    """``chrom:start-end`` of every region, newline-separated, as bytes (``names[name_bounds[c]:...]`` = chrom c)."""
    total = 0
    for i in range(codes.size):
        total += name_bounds[codes[i] + 1] - name_bounds[codes[i]] + 42  # ':', '-', '\n' and two int64s at most
    out = np.empty(total, np.uint8)
    pos = 0
    for i in range(codes.size):
        for k in range(name_bounds[codes[i]], name_bounds[codes[i] + 1]):
            out[pos] = names[k]
            pos += 1
        out[pos] = 58  # ':'
        pos = write_int(out, pos + 1, starts[i])
        out[pos] = 45  # '-'
        pos = write_int(out, pos + 1, ends[i])
        out[pos] = 10
        pos += 1
    return out[: max(pos - 1, 0)]


def read_chrom_sizes(chrom_sizes: ChromSizes) -> dict[str, int]:
    """Chromosome sizes from a two-column ``chrom<TAB>size`` file, a mapping or a Series."""
    if isinstance(chrom_sizes, str | os.PathLike):
        path = Path(chrom_sizes)
        if not path.exists():
            raise FileNotFoundError(f"chromosome sizes file not found: {path}")
        sizes: dict[str, int] = {}
        with open(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) < 2 or not fields[1].isdigit() or int(fields[1]) == 0:
                    raise ValueError(
                        f"{path}, line {line_no}: expected 'chromosome<TAB>size', got {excerpt(line.rstrip())}"
                    )
                sizes[fields[0]] = int(fields[1])
        return sizes
    sizes = {str(k): int(v) for k, v in chrom_sizes.items()}
    bad = [k for k, v in sizes.items() if v <= 0]
    if bad:
        raise ValueError(f"chromosome sizes must be positive; not so for {bad[:5]}")
    return sizes


def _integers(column: pd.Series, what: str) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if bad.size:
        raise ValueError(f"{what}, row {int(bad[0])}: not an integer ({values[bad[0]]!r})")
    return numbers.astype(np.int64)


def _chrom_codes(theirs: pd.Series, mine: pd.Series) -> np.ndarray:
    """``theirs``' chromosomes as codes into ``mine``'s categories (-1 where unknown), compared as text."""
    categories = pd.Index(mine.cat.categories.astype(str))
    if isinstance(theirs.dtype, pd.CategoricalDtype):
        mapping = categories.get_indexer(theirs.cat.categories.astype(str))
        codes = np.asarray(theirs.cat.codes, dtype=np.int64)
        return np.where(codes >= 0, mapping[codes], -1)
    return categories.get_indexer(theirs.astype(str))


def _duplicated(*keys: np.ndarray) -> np.ndarray:
    """Rows equal to an earlier row on all keys (like ``DataFrame.duplicated``, without hashing objects)."""
    order = np.lexsort(keys[::-1])
    same_as_previous = np.ones(order.size, bool)
    same_as_previous[0] = False
    for key in keys:
        sorted_key = key[order]
        same_as_previous[1:] &= sorted_key[1:] == sorted_key[:-1]
    duplicated = np.zeros(order.size, bool)
    duplicated[order] = same_as_previous  # lexsort is stable: the first occurrence keeps the lowest row
    return duplicated


def _with_qc(obs: pd.DataFrame, qc: pd.DataFrame) -> pd.DataFrame:
    """Join QC columns; a metadata column of the same name is kept (renamed) unless it holds the same values."""
    obs = obs.copy()
    for column in qc.columns:
        if column in obs.columns:
            same = np.array_equal(pd.to_numeric(obs[column], errors="coerce").to_numpy(), qc[column].to_numpy())
            if not same:
                warn(
                    f"metadata column {column!r} differs from the value bedspace computes; "
                    f"the metadata's is kept as {column + '_metadata'!r}"
                )
                obs[column + "_metadata"] = obs[column]
            obs = obs.drop(columns=column)
        obs[column] = qc[column].to_numpy()
    return obs
