"""Real region-set collections: bundled (offline) and downloadable; synthetic ones perturbed from them; ready references."""

from ._collection import RegionSetCollection, cache_dir
from ._encode import encode_hg19
from ._insulators import insulators
from ._perturb import perturb
from ._reference import encode_hg19_reference
from ._slice import encode_hg19_chr21_22

__all__ = [
    "RegionSetCollection",
    "cache_dir",
    "encode_hg19",
    "encode_hg19_chr21_22",
    "encode_hg19_reference",
    "insulators",
    "perturb",
]
