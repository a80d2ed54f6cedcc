"""``bs.pp.tokenize``: a collection of region sets as an AnnData of sets × universe regions."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Executor
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _logging as logg
from .._metadata import match_metadata, read_metadata
from .._overlap import SetTokens, UniverseIndex
from .._parallel import parallel_map
from .._regions import ChromSizes, Universe, UniverseLike, load_universe
from .._sources import RegionSets, Source, load_source, resolve_sets
from .._version import __version__
from .._warnings import BEDSpaceWarning

QC_COLUMNS = ("n_regions", "n_tokens", "frac_regions_in_universe")


@dataclass(frozen=True)
class _TokenizeOne:
    """Read one region set and overlap it with the universe (a picklable callable for any executor)."""

    index: UniverseIndex

    def __call__(self, item: tuple[str, Source]) -> SetTokens:
        return self.index.tokenize(load_source(*item))


def tokenize(
    sets: RegionSets,
    universe: UniverseLike,
    *,
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    chrom_sizes: ChromSizes | None = None,
    n_jobs: int | Executor | None = None,
) -> ad.AnnData:
    """Map every region set onto a universe of regions: the collection as sets × regions.

    A universe region is a token of a set when at least one interval of the set overlaps it by at least 1 bp
    (half-open coordinates) — exactly what ``bedtools intersect -u -a universe -b set`` returns.

    Parameters
    ----------
    sets
        A folder of BED files (``.bed``, ``.narrowPeak``, ``.broadPeak``, optionally gzipped; other files are
        ignored), a list of BED paths, a single BED path, or a dict name → DataFrame/PyRanges/path.
    universe
        The reference regions: a BED path, a DataFrame/PyRanges, or an AnnData whose ``.var`` is a universe
        (e.g. a tokenized collection — use this to tokenize new query sets onto the same regions).
        Its regions may overlap each other.
    metadata
        A CSV (or ``.tsv``) path or a DataFrame with a ``file_name`` column equal to the set names (BED file
        names without folder, or the dict keys) and one column per annotation. Every set needs a row and every
        row a set.
    chrom_sizes
        Optional chromosome sizes (``*.chrom.sizes`` path or mapping) recorded with the universe.
    n_jobs
        Parallelism over files: ``None`` uses every available core, an int sets the number of threads, and any
        :class:`concurrent.futures.Executor` is used as given (e.g. ``client.get_executor()`` of a
        ``dask.distributed`` Client to spread a large collection over a cluster).

    Returns
    -------
    AnnData with one row per set (in the order given; a folder is read in name order) and one column per
    universe region (in universe order):

    ``X``
        :class:`scipy.sparse.csr_matrix` (float32) of 0/1, sorted indices.
    ``obs``
        The metadata rows (text columns categorical) plus QC columns ``n_regions`` (intervals in the file),
        ``n_tokens`` (universe regions overlapped) and ``frac_regions_in_universe`` (fraction of the set's
        intervals that overlap at least one universe region; NaN for an empty set).
    ``var``
        ``chrom`` (categorical), ``start``, ``end`` (int64), ``n_sets`` (sets overlapping the region);
        ``var_names`` like ``chr1:100-200``.
    ``uns['bedspace']``
        ``{'universe': {'name', 'n_regions', 'non_overlapping', 'chrom_sizes' (when known)},
        'tokenize': {'params': {...}}, 'version'}``.

    Raises
    ------
    FileNotFoundError
        A BED file, the universe or the metadata file does not exist.
    ValueError
        A malformed BED line (file and line named), or metadata that does not match the sets (the names missing
        on either side are listed).

    Warns
    -----
    BEDSpaceWarning
        Sets with no intervals, and sets none of whose chromosomes are in the universe (``chr1`` vs ``1``).

    Examples
    --------
    >>> import bedspace as bs
    >>> data = bs.datasets.insulators()
    >>> adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    >>> adata.shape[0]
    8
    """
    named = resolve_sets(sets)
    uni = load_universe(universe, chrom_sizes=chrom_sizes)
    obs = pd.DataFrame(index=pd.Index([name for name, _ in named]))
    if metadata is not None:
        obs = match_metadata(read_metadata(metadata), obs.index.tolist())

    index = universe_index(uni)
    params = {
        "sets": str(sets) if isinstance(sets, str | os.PathLike) else f"{len(named)} sets",
        "metadata": str(metadata) if isinstance(metadata, str | os.PathLike) else metadata is not None,
    }
    return tokenize_onto(named, uni, index, obs=obs, n_jobs=n_jobs, params=params)


def universe_index(uni: Universe) -> UniverseIndex:
    """The overlap index of a universe (build once, reuse for every batch of queries)."""
    return UniverseIndex(uni.var["chrom"].array, uni.var["start"].to_numpy(), uni.var["end"].to_numpy())


def tokenize_onto(
    named: list[tuple[str, Source]],
    uni: Universe,
    index: UniverseIndex,
    *,
    obs: pd.DataFrame | None = None,
    n_jobs: int | Executor | None = None,
    params: dict | None = None,
) -> ad.AnnData:
    """Tokenize named sources onto a prepared universe (the work of :func:`tokenize`)."""
    if obs is None:
        obs = pd.DataFrame(index=pd.Index([name for name, _ in named]))
    results = parallel_map(_TokenizeOne(index), named, n_jobs=n_jobs, desc="tokenizing")
    _warn_about(named, results, uni.var)

    lengths = np.array([r.tokens.size for r in results], dtype=np.int64)
    n_regions = np.array([r.n_regions for r in results], dtype=np.int64)
    hit = np.array([r.n_regions_in_universe for r in results], dtype=np.float64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([r.tokens for r in results]).astype(np.int32, copy=False)
    del results[:]  # the per-set arrays are copied into `indices`; free them before building X
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    X = sp.csr_matrix(
        (
            np.ones(indices.size, np.float32),
            indices.astype(index_dtype, copy=False),
            indptr.astype(index_dtype),
        ),
        shape=(len(named), len(uni.var)),
    )
    X.has_sorted_indices = True

    qc = pd.DataFrame(
        {
            "n_regions": n_regions,
            "n_tokens": lengths,
            "frac_regions_in_universe": np.divide(hit, n_regions, out=np.full(hit.size, np.nan), where=n_regions > 0),
        },
        index=obs.index,
    )
    obs = _add_qc(obs, qc)
    var = uni.var.copy()
    var["n_sets"] = np.bincount(indices, minlength=len(var)).astype(np.int64)

    universe_info: dict = {"name": uni.name, "n_regions": len(var), "non_overlapping": index.non_overlapping}
    if uni.chrom_sizes is not None:
        universe_info["chrom_sizes"] = uni.chrom_sizes
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["bedspace"] = {
        "universe": universe_info,
        "tokenize": {"params": {**(params or {}), "overlap": "bedtools intersect -u (half-open, >= 1 bp)"}},
        "version": __version__,
    }
    logg.info(
        f"tokenized {adata.n_obs} region sets onto {adata.n_vars} universe regions "
        f"({int(lengths.sum())} tokens, {'sorted' if index.non_overlapping else 'overlapping'} universe)"
    )
    logg.added("X", "sets × universe regions, 0/1", "X")
    logg.added("bedspace", "universe and tokenization parameters", "uns")
    return adata


def _add_qc(obs: pd.DataFrame, qc: pd.DataFrame) -> pd.DataFrame:
    """Join QC columns; a metadata column of the same name is kept (renamed) unless it holds the same values."""
    obs = obs.copy()
    for column in qc.columns:
        if column in obs.columns:
            same = np.array_equal(pd.to_numeric(obs[column], errors="coerce").to_numpy(), qc[column].to_numpy())
            if not same:
                warnings.warn(
                    f"metadata column {column!r} differs from the value bedspace computes; "
                    f"the metadata's is kept as {column + '_metadata'!r}",
                    BEDSpaceWarning,
                    stacklevel=3,
                )
                obs[column + "_metadata"] = obs[column]
            obs = obs.drop(columns=column)
        obs[column] = qc[column]
    return obs


def _warn_about(named: list[tuple[str, Source]], results: list[SetTokens], var: pd.DataFrame) -> None:
    empty = [name for (name, _), r in zip(named, results, strict=True) if r.n_regions == 0]
    if empty:
        warnings.warn(
            f"{len(empty)} region set(s) have no intervals and get no tokens: {empty[:10]}",
            BEDSpaceWarning,
            stacklevel=3,
        )
    foreign = [name for (name, _), r in zip(named, results, strict=True) if not r.chromosomes_shared]
    if foreign:
        universe_chroms = list(var["chrom"].cat.categories[:5])
        warnings.warn(
            f"{len(foreign)} region set(s) share no chromosome name with the universe (universe has "
            f"{universe_chroms}...; is it 'chr1' in one and '1' in the other?): {foreign[:10]}",
            BEDSpaceWarning,
            stacklevel=3,
        )
