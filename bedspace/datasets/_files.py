"""Atomic writing of chromosome-size files (a crash leaves the old file or none, never half of one)."""

from __future__ import annotations

from pathlib import Path

from .._atomic import atomic_write_bytes


def write_chrom_sizes(sizes: dict[str, int], path: Path) -> None:
    """Write a UCSC-style ``chrom<TAB>size`` file."""
    atomic_write_bytes("".join(f"{c}\t{n}\n" for c, n in sizes.items()).encode(), path)
