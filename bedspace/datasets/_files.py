"""Atomic writing of BED and chromosome-size files (a crash leaves the old file or none, never half of one)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from .._atomic import atomic_write_bytes


def write_bed(frame: pd.DataFrame, path: Path) -> None:
    """Write the ``Chromosome, Start, End`` columns as BED3 (gzipped when the name ends in ``.gz``)."""
    text = frame[["Chromosome", "Start", "End"]].to_csv(sep="\t", header=False, index=False).encode()
    atomic_write_bytes(gzip.compress(text, compresslevel=6, mtime=0) if path.name.endswith(".gz") else text, path)


def write_chrom_sizes(sizes: dict[str, int], path: Path) -> None:
    """Write a UCSC-style ``chrom<TAB>size`` file."""
    atomic_write_bytes("".join(f"{c}\t{n}\n" for c, n in sizes.items()).encode(), path)
