"""Atomic writing of BED and chromosome-size files (a crash leaves the old file or none, never half of one)."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pandas as pd


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bed(frame: pd.DataFrame, path: Path) -> None:
    """Write the ``Chromosome, Start, End`` columns as BED3 (gzipped when the name ends in ``.gz``)."""
    text = frame[["Chromosome", "Start", "End"]].to_csv(sep="\t", header=False, index=False).encode()
    atomic_write_bytes(gzip.compress(text, compresslevel=6, mtime=0) if path.name.endswith(".gz") else text, path)


def write_chrom_sizes(sizes: dict[str, int], path: Path) -> None:
    """Write a UCSC-style ``chrom<TAB>size`` file."""
    atomic_write_bytes("".join(f"{c}\t{n}\n" for c, n in sizes.items()).encode(), path)
