"""Real region-set collections: bundled (offline) and downloadable."""

from ._collection import RegionSetCollection, cache_dir
from ._encode import encode_hg19
from ._insulators import insulators

__all__ = ["RegionSetCollection", "cache_dir", "encode_hg19", "insulators"]
