"""Building a universe: genome tiles, or the consensus of a collection's own regions."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._parallel import parallel_map
from .._quiet import pyranges
from .._sources import RegionSets, load_source, resolve_sets
from .._universe import ChromSizes, read_chrom_sizes

if TYPE_CHECKING:
    import pyranges1 as pr


def tile_universe(chrom_sizes: ChromSizes, size: int) -> pr.PyRanges:
    """Tile a genome into consecutive regions of ``size`` bp.

    Parameters
    ----------
    chrom_sizes
        A ``chrom<TAB>size`` file (UCSC ``*.chrom.sizes``), or a mapping/Series chromosome → length.
    size
        Tile width in bp. The last tile of a chromosome ends at the chromosome's end and may be shorter.

    Returns
    -------
    PyRanges (``Chromosome``, ``Start``, ``End``), chromosomes in the order given, tiles in order.
    ``.attrs["name"]`` is ``tiles_<size>bp`` and ``.attrs["chrom_sizes"]`` keeps the sizes.

    Examples
    --------
    >>> import bedspace as bs
    >>> tiles = bs.pp.tile_universe({"chr1": 12000, "chr2": 5000}, 5000)
    >>> tiles["End"].tolist()
    [5000, 10000, 12000, 5000]
    """
    size = int(size)
    if size <= 0:
        raise ValueError(f"tile size must be a positive number of bp, got {size}")
    sizes = read_chrom_sizes(chrom_sizes)
    if not sizes:
        raise ValueError("no chromosomes in chrom_sizes")
    names = list(sizes)
    lengths = np.array([sizes[c] for c in names], dtype=np.int64)
    n_tiles = -(-lengths // size)
    chrom = pd.Categorical.from_codes(np.repeat(np.arange(len(names)), n_tiles), categories=names)
    first = np.repeat(np.cumsum(n_tiles) - n_tiles, n_tiles)
    starts = (np.arange(int(n_tiles.sum()), dtype=np.int64) - first) * size
    ends = np.minimum(starts + size, np.repeat(lengths, n_tiles))
    tiles = pyranges().PyRanges({"Chromosome": chrom, "Start": starts, "End": ends})
    tiles.attrs["name"] = f"tiles_{size}bp"
    tiles.attrs["chrom_sizes"] = sizes
    return tiles


def consensus_universe(sets: RegionSets, *, min_sets: int = 5, n_jobs: int | Executor | None = None) -> pr.PyRanges:
    """Build the regions a collection agrees on: pooled, merged, kept where enough sets support them.

    All intervals of all sets are pooled; overlapping and book-ended intervals are merged (as
    ``bedtools merge`` does); a merged region is kept when intervals from at least ``min_sets`` distinct sets
    fall in it. This is the rule that built ``hg19_consensus_min5files.bed.gz``.

    Parameters
    ----------
    sets
        A folder of BED files, a list of BED paths, or a dict name → DataFrame/PyRanges.
    min_sets
        Minimum number of distinct sets supporting a kept region.
    n_jobs
        Parallel file reading: ``None`` = all cores, an int, or a :class:`concurrent.futures.Executor`.

    Returns
    -------
    PyRanges (``Chromosome``, ``Start``, ``End``, ``n_sets``) sorted like ``sort -k1,1 -k2,2n``.
    ``.attrs["name"]`` is ``consensus_min<min_sets>sets``.
    """
    min_sets = int(min_sets)
    if min_sets < 1:
        raise ValueError(f"min_sets must be >= 1, got {min_sets}")
    named = resolve_sets(sets)
    if min_sets > len(named):
        raise ValueError(f"min_sets={min_sets} is more than the {len(named)} sets given: no region could qualify")
    loaded = parallel_map(lambda item: load_source(*item), named, n_jobs=n_jobs, desc="reading sets")

    pooled: dict[str, list[tuple[np.ndarray, np.ndarray, int]]] = {}
    for set_id, intervals in enumerate(loaded):
        for chrom, a, b in zip(intervals.run_chroms, intervals.run_bounds[:-1], intervals.run_bounds[1:], strict=True):
            pooled.setdefault(chrom, []).append((intervals.starts[a:b], intervals.ends[a:b], set_id))

    frames = []
    for chrom in sorted(pooled):
        parts = pooled[chrom]
        starts = np.concatenate([p[0] for p in parts])
        ends = np.concatenate([p[1] for p in parts])
        set_ids = np.concatenate([np.full(p[0].size, p[2], np.int64) for p in parts])
        merged_start, merged_end, support = _merge_with_support(starts, ends, set_ids, len(named))
        keep = support >= min_sets
        frames.append(
            pd.DataFrame(
                {
                    "Chromosome": chrom,
                    "Start": merged_start[keep],
                    "End": merged_end[keep],
                    "n_sets": support[keep],
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["Chromosome"] = pd.Categorical(table["Chromosome"], categories=sorted(pooled))
    universe = pyranges().PyRanges(table)
    universe.attrs["name"] = f"consensus_min{min_sets}sets"
    return universe


def _merge_with_support(
    starts: np.ndarray, ends: np.ndarray, set_ids: np.ndarray, n_sets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge overlapping/book-ended intervals of one chromosome and count distinct sets per merged region."""
    order = np.argsort(starts, kind="stable")
    starts, ends, set_ids = starts[order], ends[order], set_ids[order]
    reach = np.maximum.accumulate(ends)
    new_cluster = np.empty(starts.size, bool)
    new_cluster[0] = True
    new_cluster[1:] = starts[1:] > reach[:-1]
    cluster = np.cumsum(new_cluster) - 1
    first = np.flatnonzero(new_cluster)
    last = np.append(first[1:], starts.size) - 1
    distinct = np.unique(cluster * n_sets + set_ids)
    support = np.bincount(distinct // n_sets, minlength=first.size)
    return starts[first], reach[last], support
