"""Reading and writing the files bedspace works with."""

from ._bed import read_bed

__all__ = ["read_bed"]
