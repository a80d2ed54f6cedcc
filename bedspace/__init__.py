"""bedspace: joint embeddings of genomic region sets and their metadata.

Submodules and classes load on first use (``bs.pp``, ``bs.BEDSpaceModel``, ...), so that ``import bedspace`` and
the command line's ``--help`` stay fast; importing has no side effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from ._warnings import BEDSpaceWarning

if TYPE_CHECKING:
    from . import annotate, datasets, io, pl, pp, tl
    from ._atomic import NotReplaceableError
    from ._labels import LabelTable
    from ._model import BEDSpaceModel
    from ._reference import ReferenceSets
    from ._universe import Universe

_SUBMODULES = ("annotate", "datasets", "io", "pl", "pp", "tl")
_OBJECTS = {
    "BEDSpaceModel": "._model",
    "LabelTable": "._labels",
    "NotReplaceableError": "._atomic",
    "ReferenceSets": "._reference",
    "Universe": "._universe",
}

__all__ = [
    "BEDSpaceModel",
    "BEDSpaceWarning",
    "LabelTable",
    "NotReplaceableError",
    "ReferenceSets",
    "Universe",
    "__version__",
    "annotate",
    "datasets",
    "io",
    "pl",
    "pp",
    "tl",
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
    elif name in _OBJECTS:
        module = getattr(importlib.import_module(_OBJECTS[name], __name__), name)
    else:
        raise AttributeError(f"module 'bedspace' has no attribute {name!r}")
    globals()[name] = module  # later lookups skip this function
    return module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
