"""Chromosome-size files and checksums of downloaded data."""

from __future__ import annotations

from pathlib import Path

from .._atomic import atomic_write_bytes
from .._download import ChecksumMismatchError, check_sha256, checksum_mismatch

__all__ = ["ChecksumMismatchError", "check_sha256", "checksum_mismatch", "write_chrom_sizes"]


def write_chrom_sizes(sizes: dict[str, int], path: Path) -> None:
    """Write a UCSC-style ``chrom<TAB>size`` file, atomically (a crash leaves the old file or none)."""
    atomic_write_bytes("".join(f"{c}\t{n}\n" for c, n in sizes.items()).encode(), path)
