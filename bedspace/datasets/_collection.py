"""What a dataset loader returns, and where downloaded or derived files are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._download import cache_dir
from .._sources import bed_files_in

__all__ = ["RegionSetCollection", "cache_dir"]


@dataclass(frozen=True)
class RegionSetCollection:
    """Paths to a collection of region sets: BED folder, metadata, universes.

    Pass them straight to :func:`bedspace.pp.tokenize`:
    ``bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)``.
    """

    name: str
    beds: Path  #: folder of BED files
    metadata: Path  #: CSV with a ``file_name`` column
    universes: dict[str, Path] = field(default_factory=dict)  #: universe name → BED path
    default_universe: str = ""
    chrom_sizes: Path | None = None  #: ``*.chrom.sizes`` file

    @property
    def universe(self) -> Path:
        """The default universe."""
        return self.universes[self.default_universe]

    @property
    def files(self) -> list[Path]:
        """The BED files, in name order."""
        return bed_files_in(self.beds)
