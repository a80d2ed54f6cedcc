"""``bs.pp.liftover``: region sets moved from one genome build to another (hg38 → hg19 and back)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from .. import _logging as logg
from .._builds import MAX_STRETCH, build_name, lift_sets
from .._formats.bed import write_bed
from .._sources import RegionSets, resolve_sets


def liftover(
    sets: RegionSets | pd.DataFrame,
    *,
    source: str = "hg38",
    target: str = "hg19",
    chain: str | os.PathLike | None = None,
    max_stretch: float = MAX_STRETCH,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Lift region sets from one genome build to another with UCSC's chain files.

    The rule, for each half-open interval ``[start, end)``: its first base (``start``) and its last base
    (``end - 1``) are lifted. The interval is kept when each lands in exactly one place, both on the same
    chromosome and strand, in order along that strand; it becomes the span between them, and is kept when that
    span's length is within ``max_stretch`` times its own, both ways (a peak across a deletion or an insertion of
    the other build is dropped rather than shrunk or stretched). Every interval dropped is counted by its reason —
    ``unmapped`` (an end maps nowhere), ``ambiguous`` (an end maps to several places), ``split`` (the ends land on
    different chromosomes or strands, or out of order), ``stretched`` — logged per set, recorded with the result,
    and a set that loses more than 5% of its intervals gets a warning naming it. Chromosomes are matched by their
    exact name (UCSC's ``chr1``…). Coordinates are lifted with the ``liftover`` package.

    Parameters
    ----------
    sets
        A BED file, a folder of them (``.bed``, ``.narrowPeak``, ``.broadPeak``, optionally gzipped), a list of
        paths, a DataFrame/PyRanges of intervals (``Chromosome, Start, End`` or ``chrom, start, end`` columns),
        or a dict name → DataFrame/PyRanges/path.
    source, target
        The builds lifted from and to: ``"hg19"`` or ``"hg38"`` (``"GRCh37"``, ``"GRCh38"`` are the same). Any
        names when ``chain`` is given (they are recorded).
    chain
        A UCSC chain file (``.over.chain`` or ``.over.chain.gz``) from ``source`` to ``target``, read as it is.
        By default bedspace's is used: fetched once into the cache folder (``$BEDSPACE_CACHE_DIR`` or the user
        cache, ``chains/``) from ``$BEDSPACE_DATA_DIR/chains/`` when a copy is there, else from UCSC
        (``hgdownload.soe.ucsc.edu/goldenPath/{hg19,hg38}/liftOver/``), and refused unless its sha256 is the one
        bedspace knows.
    max_stretch
        An interval whose lifted length is more than this many times its own, or less than its own over this, is
        dropped (a number > 1).
    out
        A folder to write the lifted sets into, as BED3 files named as the sets (gzipped when the name ends in
        ``.gz``; a frame or a dict key without a BED suffix gets ``.bed.gz``), each written whole or not at all.
        It must not hold the input files.
    overwrite
        With ``out``: replace files already there (otherwise an existing file is an error, raised before any work).

    Returns
    -------
    For one frame or one BED file, a DataFrame of its lifted intervals; otherwise a dict name → DataFrame, in the
    order of the sets (the names :func:`~bedspace.pp.tokenize` gives them; pass the dict to it, or ask a search
    with ``assembly=`` instead). A frame keeps its other columns and its row order (the rows dropped are left
    out); a file's intervals come as ``Chromosome``, ``Start``, ``End``, sorted by position. Each result's
    ``attrs["liftover"]`` records ``source``, ``target``, ``n_regions``, ``n_lifted``, ``n_dropped`` and the
    count of each reason (``n_unmapped``, ``n_ambiguous``, ``n_split``, ``n_stretched``).

    Raises
    ------
    ValueError
        ``source`` or ``target`` not a build bedspace knows (without ``chain``), the same build twice,
        ``max_stretch`` not a number > 1, a chain file that is not one, a fetched chain file whose sha256 differs
        (naming the file and both digests), ``out`` holding an input file.
    FileNotFoundError
        A BED file or ``chain`` does not exist.
    FileExistsError
        A file of ``out`` exists and ``overwrite`` is false.
    OSError
        The chain file could not be downloaded (the URL is named).

    Warns
    -----
    BEDSpaceWarning
        A set lost more than 5% of its intervals (its counts by reason are given).

    Examples
    --------
    >>> import bedspace as bs
    >>> lifted = bs.pp.liftover("peaks_hg38.bed.gz", source="hg38", target="hg19")  # doctest: +SKIP
    >>> lifted.attrs["liftover"]["n_dropped"]  # doctest: +SKIP
    """
    source_build = build_name(source, option="source", known=chain is None)
    target_build = build_name(target, option="target", known=chain is None)
    if source_build == target_build:
        raise ValueError(f"source and target are the same build ({source_build}): there is nothing to lift")
    if isinstance(max_stretch, bool) or not isinstance(max_stretch, int | float) or not math.isfinite(max_stretch):
        raise ValueError(f"max_stretch must be a number > 1, got {max_stretch!r}")
    if max_stretch <= 1:
        raise ValueError(f"max_stretch must be a number > 1, got {max_stretch!r}")
    one = isinstance(sets, pd.DataFrame) or (isinstance(sets, str | os.PathLike) and Path(sets).is_file())
    named = resolve_sets({"query": sets} if isinstance(sets, pd.DataFrame) else sets)
    destinations = _destinations(named, out, overwrite=overwrite) if out is not None else None
    lifted, _ = lift_sets(named, source=source_build, target=target_build, chain=chain, max_stretch=max_stretch)
    results = dict(lifted)
    for name, frame in results.items():
        if destinations is not None:
            write_bed(frame, destinations[name])
    total = sum(f.attrs["liftover"]["n_regions"] for f in results.values())
    kept = sum(f.attrs["liftover"]["n_lifted"] for f in results.values())
    logg.info(
        f"lifted {len(results)} region set(s) from {source_build} to {target_build}: {kept:,} of {total:,} regions, "
        f"{total - kept:,} dropped" + (f"; written into {out}" if out is not None else "")
    )
    return next(iter(results.values())) if one else results


def _destinations(named, out, *, overwrite: bool) -> dict[str, Path]:
    """Where each lifted set is written in ``out``; an input in ``out`` or an existing file is refused up front."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"out={str(out)!r} is a file, not a folder")
    inputs = {Path(os.path.abspath(src)) for _, src in named if isinstance(src, Path)}
    destinations = {}
    for name, _ in named:
        file_name = Path(name).name
        if not file_name.lower().endswith((".bed", ".bed.gz", ".narrowpeak.gz", ".narrowpeak", ".bed3.gz")):
            file_name += ".bed.gz"
        path = folder / file_name
        if Path(os.path.abspath(path)) in inputs:
            raise ValueError(f"out={str(out)!r} holds the input {path}: lifting would replace it; give another folder")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists: give overwrite=True to replace it, or another out")
        destinations[name] = path
    folder.mkdir(parents=True, exist_ok=True)
    return destinations
