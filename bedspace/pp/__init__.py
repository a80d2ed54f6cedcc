"""Preprocessing: universes, tokenization of region sets, held-out splits, lifting sets between genome builds."""

from ._liftover import liftover
from ._split import split
from ._tokenize import tokenize
from ._universe import consensus_universe, tile_universe

__all__ = ["consensus_universe", "liftover", "split", "tile_universe", "tokenize"]
