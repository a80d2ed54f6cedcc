"""Reading and writing the files bedspace works with."""

from .._formats.bed import read_bed, write_bed
from .._formats.starspace import read_starspace_tsv, write_starspace_tsv
from ._training_file import write_starspace

__all__ = ["read_bed", "write_bed", "read_starspace_tsv", "write_starspace", "write_starspace_tsv"]
