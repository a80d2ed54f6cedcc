"""Preprocessing: universes and tokenization of region sets."""

from ._tokenize import tokenize
from ._universe import consensus_universe, tile_universe

__all__ = ["consensus_universe", "tile_universe", "tokenize"]
