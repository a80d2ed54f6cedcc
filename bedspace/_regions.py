"""The universe as AnnData ``.var``: loading it from any accepted form, and chromosome sizes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ._warnings import BEDSpaceWarning
from ._formats.bed import Intervals, read_intervals

ChromSizes = str | os.PathLike | Mapping[str, int] | pd.Series
UniverseLike = str | os.PathLike | pd.DataFrame | ad.AnnData


@dataclass(frozen=True)
class Universe:
    """A universe ready to be the ``.var`` of a collection."""

    var: pd.DataFrame  # chrom (categorical), start, end (int64); index like chr1:100-200
    name: str
    chrom_sizes: dict[str, int] | None


def region_names(chrom: pd.Series | np.ndarray, start: np.ndarray, end: np.ndarray) -> pd.Index:
    """``chr1:100-200`` names (the SnapATAC2 convention)."""
    return pd.Index(
        [f"{c}:{s}-{e}" for c, s, e in zip(np.asarray(chrom, dtype=object), start.tolist(), end.tolist(), strict=True)]
    )


def var_from_intervals(intervals: Intervals, *, source: str) -> pd.DataFrame:
    """Build a ``.var`` frame from intervals; exact duplicate regions are kept once, with a warning."""
    codes, categories = intervals.chrom_codes()
    var = pd.DataFrame(
        {
            "chrom": pd.Categorical.from_codes(codes, categories=categories),
            "start": intervals.starts.astype(np.int64),
            "end": intervals.ends.astype(np.int64),
        }
    )
    if len(var) == 0:
        raise ValueError(f"{source}: the universe has no regions")
    duplicated = _duplicated(codes, intervals.starts, intervals.ends)
    if duplicated.any():
        warnings.warn(
            f"{source}: {int(duplicated.sum())} universe regions are exact duplicates of earlier ones; "
            "each distinct region is kept once",
            BEDSpaceWarning,
            stacklevel=3,
        )
        var = var.loc[~duplicated].reset_index(drop=True)
    var.index = region_names(var["chrom"], var["start"].to_numpy(), var["end"].to_numpy())
    return var


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
                if len(fields) < 2 or not fields[1].isdigit():
                    raise ValueError(f"{path}, line {line_no}: expected 'chromosome<TAB>size', got {line.rstrip()!r}")
                sizes[fields[0]] = int(fields[1])
        return sizes
    items = chrom_sizes.items()
    sizes = {str(k): int(v) for k, v in items}
    bad = [k for k, v in sizes.items() if v <= 0]
    if bad:
        raise ValueError(f"chromosome sizes must be positive; not so for {bad[:5]}")
    return sizes


def load_universe(universe: UniverseLike, *, chrom_sizes: ChromSizes | None = None) -> Universe:
    """Accept a BED path, a DataFrame/PyRanges, or an AnnData whose ``.var`` is a universe."""
    sizes = read_chrom_sizes(chrom_sizes) if chrom_sizes is not None else None
    if isinstance(universe, ad.AnnData):
        missing = [c for c in ("chrom", "start", "end") if c not in universe.var.columns]
        if missing:
            raise ValueError(
                f"the AnnData given as universe has no {missing} column(s) in .var; pass an AnnData made by "
                "bs.pp.tokenize, a BED path or a DataFrame"
            )
        var = universe.var[["chrom", "start", "end"]].copy()
        var["chrom"] = var["chrom"].astype("category")
        var["start"] = var["start"].astype(np.int64)
        var["end"] = var["end"].astype(np.int64)
        info = universe.uns.get("bedspace", {}).get("universe", {})
        if sizes is None and "chrom_sizes" in info:
            sizes = {str(k): int(v) for k, v in info["chrom_sizes"].items()}
        return Universe(var, str(info.get("name", "universe")), sizes)
    if isinstance(universe, pd.DataFrame):
        intervals = Intervals.from_frame(universe, source="universe")
        name = str(universe.attrs.get("name", "universe"))
    elif isinstance(universe, str | os.PathLike):
        intervals = read_intervals(universe)
        name = Path(universe).name
    else:
        raise TypeError(
            f"universe must be a BED path, a DataFrame/PyRanges or an AnnData; got {type(universe).__name__}"
        )
    return Universe(var_from_intervals(intervals, source=name), name, sizes)
