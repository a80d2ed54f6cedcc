"""Real region-set collections: bundled (offline) and downloadable; and synthetic ones perturbed from them."""

from ._collection import RegionSetCollection, cache_dir
from ._encode import encode_hg19
from ._insulators import insulators
from ._perturb import perturb

__all__ = ["RegionSetCollection", "cache_dir", "encode_hg19", "insulators", "perturb"]
