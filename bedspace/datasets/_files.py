"""Chromosome-size files and checksums of downloaded data."""

from __future__ import annotations

from pathlib import Path

from .._atomic import atomic_write_bytes


class ChecksumMismatchError(ValueError):
    """Downloaded (or derived) data is not what bedspace expects: a corrupt download, or a changed source."""


def write_chrom_sizes(sizes: dict[str, int], path: Path) -> None:
    """Write a UCSC-style ``chrom<TAB>size`` file, atomically (a crash leaves the old file or none)."""
    atomic_write_bytes("".join(f"{c}\t{n}\n" for c, n in sizes.items()).encode(), path)


def checksum_mismatch(actual: str, expected: str, *, what: str) -> ChecksumMismatchError:
    """The :class:`ChecksumMismatchError` of data named ``what`` whose sha256 is ``actual``, not ``expected``."""
    return ChecksumMismatchError(
        f"{what}: sha256 is {actual}, expected {expected}. The data is corrupt or its source changed; it was "
        "not kept. Try again; if this persists, the source no longer serves the data bedspace was made for"
    )


def check_sha256(actual: str, expected: str, *, what: str) -> None:
    """Raise :class:`ChecksumMismatchError` naming ``what`` and both digests unless they are equal."""
    if actual != expected:
        raise checksum_mismatch(actual, expected, what=what)
