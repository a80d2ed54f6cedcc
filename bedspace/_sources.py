"""Turning the ways users name region sets (folder, paths, patterns, frames) into named sources, and loading them."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ._formats.bed import Intervals, read_intervals

BED_SUFFIXES = (".bed", ".narrowpeak", ".broadpeak", ".bed3", ".bed6")
COMPRESSED_SUFFIXES = (".gz", ".bgz")

Source = Path | pd.DataFrame
RegionSets = str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, pd.DataFrame | str | os.PathLike]


def is_bed_name(name: str) -> bool:
    """Whether a file name looks like a BED file (plain or compressed)."""
    lower = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            break
    return lower.endswith(BED_SUFFIXES)


def bed_files_in(folder: Path) -> list[Path]:
    """List the BED files of a folder, sorted by name (hidden files and other files ignored)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_bed_name(p.name))
    if not files:
        raise ValueError(
            f"no BED files in folder {folder} (looked for names ending in "
            f"{', '.join(BED_SUFFIXES)}, optionally followed by .gz)"
        )
    return files


def is_pattern(text) -> bool:
    """Whether ``text`` is a shell-style pattern (``*``, ``?`` or ``[...]``) rather than a plain name."""
    return isinstance(text, str) and any(character in text for character in "*?[")


def matching_paths(pattern: str) -> list[Path]:
    """The paths a shell-style pattern matches, sorted; an empty list when none does.

    The pattern is expanded as a shell would (``peaks/*.bed.gz``; a name starting with a dot is matched only by
    a pattern starting with one), and ``**`` matches folders at any depth.
    """
    return sorted(Path(path) for path in glob.glob(pattern, recursive=True))


def resolve_sets(sets: RegionSets) -> list[tuple[str, Source]]:
    """Name every region set: file names for paths, keys for a mapping."""
    if isinstance(sets, Mapping):
        named = [(str(name), Path(src) if isinstance(src, str | os.PathLike) else src) for name, src in sets.items()]
        for name, src in named:
            if not isinstance(src, Path | pd.DataFrame):
                raise TypeError(
                    f"region set {name!r}: expected a DataFrame, PyRanges or path, got {type(src).__name__}"
                )
    elif isinstance(sets, str | os.PathLike):
        path = Path(sets)
        if not path.exists():
            raise FileNotFoundError(f"region sets not found: {path}")
        paths = bed_files_in(path) if path.is_dir() else [path]
        named = [(p.name, p) for p in paths]
    elif isinstance(sets, Sequence):
        named = [(Path(p).name, Path(p)) for p in sets]
        missing = [str(p) for _, p in named if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} BED file(s) not found: {', '.join(missing[:10])}")
    else:
        raise TypeError(
            f"sets must be a folder, a list of BED paths or a dict name -> DataFrame; got {type(sets).__name__}"
        )
    if not named:
        raise ValueError("no region sets given")
    names = pd.Index([name for name, _ in named])
    if names.has_duplicates:
        raise ValueError(f"region set names must be unique; repeated: {sorted(set(names[names.duplicated()]))}")
    return named


def load_source(name: str, source: Source) -> Intervals:
    """Read one region set into :class:`~bedspace._formats.bed.Intervals`."""
    if isinstance(source, pd.DataFrame):
        return Intervals.from_frame(source, source=f"region set {name!r}")
    return read_intervals(source)
