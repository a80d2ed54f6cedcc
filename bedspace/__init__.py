"""bedspace: joint embeddings of genomic region sets and their metadata."""

from . import datasets, io, pl, pp, tl
from ._model import BEDSpaceModel
from ._version import __version__
from ._warnings import BEDSpaceWarning

__all__ = ["BEDSpaceModel", "BEDSpaceWarning", "__version__", "datasets", "io", "pl", "pp", "tl"]
