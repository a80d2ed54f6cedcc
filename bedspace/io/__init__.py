"""Reading and writing the files bedspace works with."""

from ._bed import read_bed, write_bed
from ._starspace import read_starspace_tsv, write_starspace, write_starspace_tsv

__all__ = ["read_bed", "write_bed", "read_starspace_tsv", "write_starspace", "write_starspace_tsv"]
