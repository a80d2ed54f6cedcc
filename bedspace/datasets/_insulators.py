"""The bundled dm3 insulator collection (8 sets, works offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from .._formats.bed import read_intervals, write_bed
from .._sources import bed_files_in
from ..pp._universe import tile_universe
from ._collection import RegionSetCollection, cache_dir
from ._files import write_chrom_sizes

TILE_SIZE = 5000


def insulators() -> RegionSetCollection:
    """Eight real *Drosophila* (dm3) insulator ChIP-chip region sets, bundled with bedspace.

    BEAF-32, CTCF, CP190 and Su(Hw) binding sites in Kc and Mbn2 cells (Bushey et al. 2009), 2–5k regions
    each, from the MIT-licensed pybedtools test data (see ``ATTRIBUTION.md`` beside the files). The universe is
    a 5 kb tiling of the extent of the sets (dm3 chromosome sizes are not bundled; each chromosome is taken to
    end at the last interval on it), made on first use in the cache folder.

    Returns
    -------
    :class:`RegionSetCollection` with ``beds``, ``metadata`` (columns ``target``, ``cell_type``, ``assay``, ...),
    ``universes = {"tiles_5kb": ...}`` and ``chrom_sizes`` (the extents).

    Examples
    --------
    >>> import bedspace as bs
    >>> data = bs.datasets.insulators()
    >>> len(data.files)
    8
    """
    folder = Path(str(resources.files("bedspace.datasets") / "insulators"))
    target = cache_dir() / "dm3_insulators"
    universe = target / f"dm3_insulators_tiles_{TILE_SIZE // 1000}kb.bed"
    sizes_path = target / "dm3_insulators_extent.chrom.sizes"
    if not (universe.exists() and sizes_path.exists()):
        extent: dict[str, int] = {}
        for path in bed_files_in(folder):
            frame = read_intervals(path).to_frame()
            for chrom, end in frame.groupby("Chromosome", observed=True)["End"].max().items():
                extent[str(chrom)] = max(extent.get(str(chrom), 0), int(end))
        extent = dict(sorted(extent.items()))
        write_chrom_sizes(extent, sizes_path)
        write_bed(pd.DataFrame(tile_universe(extent, TILE_SIZE)), universe)
    return RegionSetCollection(
        name="dm3_insulators",
        beds=folder,
        metadata=folder / "metadata.csv",
        universes={"tiles_5kb": universe},
        default_universe="tiles_5kb",
        chrom_sizes=sizes_path,
    )
