"""Genome builds: their names, the chain files between them, lifting intervals, and telling a query's build.

A build is named as UCSC names it (``hg19``, ``hg38``; ``GRCh37`` and ``GRCh38`` are the same builds). Coordinates
are lifted with UCSC's chain files through the ``liftover`` package (one position at a time, in C++), by one rule
(:func:`lift_intervals`): both ends of an interval are lifted, and the interval is kept when they land once each, on
one chromosome and strand, in order, with a length within :data:`MAX_STRETCH` times the original's. Every interval
dropped is counted by its reason (:class:`LiftSummary`), never lost silently.

The chain files are fetched through :func:`bedspace._download.fetch` (pooch, checked against the sha256 below) into
the cache, from ``$BEDSPACE_DATA_DIR/chains/`` when a copy is there, else from UCSC; a chain file of one's own is
given by path (``chain=``) and read as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import _logging as logg
from ._download import cache_dir, fetch
from ._formats.bed import Intervals
from ._formats.bed import _locate_columns as locate_columns
from ._sources import Source, load_source
from ._warnings import warn

#: The builds bedspace knows by name, with their other spellings (compared without case).
BUILDS: dict[str, str] = {"hg19": "hg19", "grch37": "hg19", "hg38": "hg38", "grch38": "hg38"}

#: An interval lifted to more than this many times its length, or less than its length over this, is dropped.
MAX_STRETCH = 2.0


@dataclass(frozen=True)
class Chain:
    """A UCSC chain file: its name, where it is served, its sha256."""

    name: str
    url: str
    sha256: str


#: The chain files bedspace fetches, by (source build, target build).
CHAINS: dict[tuple[str, str], Chain] = {
    ("hg19", "hg38"): Chain(
        "hg19ToHg38.over.chain.gz",
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz",
        "e8c69eb412aae1989433afb7801ed12eaa859e7d644ca8efe498e7e1a17c5a6e",
    ),
    ("hg38", "hg19"): Chain(
        "hg38ToHg19.over.chain.gz",
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/liftOver/hg38ToHg19.over.chain.gz",
        "3a055f690fbddadea2c4cc624f09dc3519f9001ebab2223a25bf377b1a4564b9",
    ),
}

#: Why an interval is dropped, in the order a summary lists them.
REASONS = {
    "unmapped": "an end maps nowhere (deleted or absent in the target build, or its chromosome is not in the chain)",
    "ambiguous": "an end maps to several places",
    "split": "its ends land on different chromosomes or strands, or out of order",
    "stretched": f"its lifted length differs from its own by more than a factor of {MAX_STRETCH:g}",
}


def build_name(value, *, option: str = "assembly", known: bool = False) -> str | None:
    """The build ``value`` names, spelled as bedspace records it (``GRCh38`` → ``hg38``); ``None`` stays ``None``.

    A name bedspace does not know is returned as given, unless ``known``: then it is an error naming ``option``.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{option} must be a genome build's name such as 'hg19' or 'hg38', got {value!r}")
    name = BUILDS.get(value.strip().lower())
    if name is None and known:
        raise ValueError(
            f"{option}={value!r} is not a genome build bedspace can lift: it knows {_known()}; for another build "
            "give the chain file (chain=)"
        )
    return name or value.strip()


def _known() -> str:
    spellings: dict[str, list[str]] = {}
    for spelling, name in BUILDS.items():
        if spelling != name:
            spellings.setdefault(name, []).append({"grch37": "GRCh37", "grch38": "GRCh38"}.get(spelling, spelling))
    return ", ".join(f"{name} ({', '.join(other)})" for name, other in spellings.items())


def chain_file(source: str, target: str, *, chain: str | os.PathLike | None = None) -> Path:
    """The chain file lifting ``source`` coordinates to ``target``: ``chain`` as given, or bedspace's, fetched.

    bedspace's is fetched once into the cache (``chains/``), from ``$BEDSPACE_DATA_DIR/chains/`` when a copy is
    there, else from UCSC; either way its sha256 must be :data:`CHAINS`'.

    Raises
    ------
    FileNotFoundError
        ``chain`` is not a file.
    ValueError
        No chain file is known between the builds (and none is given); a fetched one whose sha256 differs
        (``ChecksumMismatchError``, naming it and both digests).
    OSError
        The download failed, naming the URL.
    """
    if chain is not None:
        path = Path(chain)
        if not path.is_file():
            raise FileNotFoundError(f"chain file not found: {path} (chain=)")
        return path
    spec = CHAINS.get((source, target))
    if spec is None:
        pairs = ", ".join(f"{a} → {b}" for a, b in CHAINS)
        raise ValueError(
            f"bedspace has no chain file lifting {source} to {target} (it has {pairs}): give one with chain= "
            "(UCSC serves them as <from>To<To>.over.chain.gz)"
        )
    destination = cache_dir() / "chains" / spec.name
    stamp = _stamp(destination)
    if stamp is not None and _FETCHED.get(destination) == stamp:
        return destination
    data = os.environ.get("BEDSPACE_DATA_DIR")
    local = Path(data) / "chains" / spec.name if data else None
    url = local.resolve().as_uri() if local is not None and local.is_file() else spec.url
    fetch(url, destination, desc=spec.name, sha256=spec.sha256)
    _FETCHED[destination] = _stamp(destination)
    return destination


# the chain files checked in this process, with their size and modification time then: checked once
_FETCHED: dict[Path, tuple[int, int]] = {}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


_CONVERTERS: dict[tuple[str, tuple], object] = {}


def converter(path: Path):
    """The ``liftover.ChainFile`` of a chain file, read once per process (while the file is unchanged)."""
    from liftover import ChainFile

    key = (str(Path(path).resolve()), _stamp(Path(path)))
    found = _CONVERTERS.get(key)
    if found is None:
        try:
            found = ChainFile(str(path))
        except Exception as err:  # the C++ reader's errors: a file that is not a chain file
            raise ValueError(f"{path} is not a readable chain file ({err})") from err
        if len(found) == 0:
            raise ValueError(f"{path} is not a chain file: it holds no chain")
        _CONVERTERS.clear()  # one at a time is what a search or a lift uses; the others are small to read again
        _CONVERTERS[key] = found
    return found


@dataclass(frozen=True)
class LiftSummary:
    """What lifting one region set did: intervals given, lifted, and dropped by reason."""

    name: str
    source: str
    target: str
    n_regions: int
    n_lifted: int
    dropped: Mapping[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        """Intervals dropped, for any reason."""
        return self.n_regions - self.n_lifted

    def text(self) -> str:
        """``lifted 9,876 of 10,000 regions of 'a.bed' from hg38 to hg19 (124 dropped: 100 unmapped, 24 split)``."""
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in self.dropped.items() if n)
        dropped = f" ({self.n_dropped:,} dropped: {reasons})" if self.n_dropped else ""
        return (
            f"lifted {self.n_lifted:,} of {self.n_regions:,} regions of {self.name!r} from {self.source} to "
            f"{self.target}{dropped}"
        )

    def record(self) -> dict:
        """Plain values: ``source``, ``target``, ``n_regions``, ``n_lifted``, ``n_dropped`` and one count per reason."""
        return {
            "source": self.source, "target": self.target, "n_regions": self.n_regions, "n_lifted": self.n_lifted,
            "n_dropped": self.n_dropped, **{f"n_{reason}": int(self.dropped.get(reason, 0)) for reason in REASONS},
        }  # fmt: skip


@dataclass(frozen=True)
class Lifted:
    """Lifted intervals: ``rows`` (which input intervals were kept, in input order) and where they landed."""

    rows: np.ndarray
    chroms: list[str]
    starts: np.ndarray
    ends: np.ndarray
    summary: LiftSummary

    def to_frame(self) -> pd.DataFrame:
        """``Chromosome``, ``Start``, ``End`` in input order (the order of :attr:`rows`)."""
        return pd.DataFrame({"Chromosome": pd.Categorical(self.chroms), "Start": self.starts, "End": self.ends})

    def intervals(self) -> Intervals:
        """As :class:`~bedspace._formats.bed.Intervals`, grouped by chromosome and sorted by position."""
        frame = self.to_frame().sort_values(["Chromosome", "Start", "End"], kind="stable")
        return Intervals.from_frame(frame, source=f"region set {self.summary.name!r} lifted to {self.summary.target}")


def lift_intervals(
    intervals: Intervals, convert, *, name: str, source: str, target: str, max_stretch: float = MAX_STRETCH
) -> Lifted:
    """Lift half-open intervals with a ``liftover.ChainFile``, by bedspace's one rule.

    The first base (``start``) and the last base (``end - 1``) are lifted. The interval is kept when each maps to
    exactly one place, both on the same chromosome and strand, in order along the strand; it becomes the span
    between them (``[start', end' + 1)``, or its mirror on the minus strand) and is kept when that span's length
    is within ``max_stretch`` times the original's, both ways. Chromosomes are matched by their exact name.
    """
    keys = set(convert.keys())
    rows: list[int] = []
    chroms: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    dropped = dict.fromkeys(REASONS, 0)
    bounds = intervals.run_bounds.tolist()
    for run, chrom in enumerate(intervals.run_chroms):
        lo, hi = bounds[run], bounds[run + 1]
        if chrom not in keys:
            dropped["unmapped"] += hi - lo
            continue
        position = convert[chrom]
        starts, ends = intervals.starts[lo:hi].tolist(), intervals.ends[lo:hi].tolist()
        for offset, (start, end) in enumerate(zip(starts, ends, strict=True)):
            first = position[start]
            last = position[end - 1] if end - 1 != start else first
            if not first or not last:
                dropped["unmapped"] += 1
                continue
            if len(first) > 1 or len(last) > 1:
                dropped["ambiguous"] += 1
                continue
            (chrom_a, at_a, strand_a), (chrom_b, at_b, strand_b) = first[0], last[0]
            if chrom_a != chrom_b or strand_a != strand_b:
                dropped["split"] += 1
                continue
            lifted_start, lifted_end = (at_a, at_b + 1) if strand_a == "+" else (at_b, at_a + 1)
            length, lifted = end - start, lifted_end - lifted_start
            if lifted <= 0:
                dropped["split"] += 1
                continue
            if lifted > length * max_stretch or lifted * max_stretch < length:
                dropped["stretched"] += 1
                continue
            rows.append(lo + offset)
            chroms.append(chrom_a)
            new_starts.append(lifted_start)
            new_ends.append(lifted_end)
    summary = LiftSummary(name, source, target, len(intervals), len(rows), dropped)
    return Lifted(
        np.asarray(rows, dtype=np.int64), chroms, np.asarray(new_starts, dtype=np.int64),
        np.asarray(new_ends, dtype=np.int64), summary,
    )  # fmt: skip


def lift(
    intervals: Intervals,
    *,
    name: str,
    source: str,
    target: str,
    chain: str | os.PathLike | None = None,
    max_stretch: float = MAX_STRETCH,
) -> Lifted:
    """Lift one region set's intervals from build ``source`` to ``target`` (:func:`lift_intervals`' rule)."""
    path = chain_file(source, target, chain=chain)
    return lift_intervals(intervals, converter(path), name=name, source=source, target=target, max_stretch=max_stretch)


# -- telling a query's build -----------------------------------------------------------------------------------
#: Intervals of a query lifted to tell its build (an even sample: the answer needs a few hundred).
SAMPLE = 2_000
#: A query's share of intervals in the universe below which its build is checked.
CHECK_BELOW = 0.8
#: It resembles another build when lifting from that build brings this much more of it into the universe, and
#: at least :data:`RESEMBLES_RATIO` times as much as it had.
RESEMBLES_GAIN = 0.1
RESEMBLES_RATIO = 1.25


@dataclass(frozen=True)
class BuildGuess:
    """How much of a query's sample lies in the universe as it is, and once lifted from ``build``."""

    build: str
    as_is: float
    lifted: float

    @property
    def resembles(self) -> bool:
        """Whether the query looks like ``build`` rather than the universe's."""
        return self.lifted - self.as_is >= RESEMBLES_GAIN and self.lifted >= RESEMBLES_RATIO * self.as_is


def sample_of(intervals: Intervals, size: int = SAMPLE) -> Intervals:
    """At most ``size`` intervals spread evenly over the set (every k-th), as the set lists them."""
    n = len(intervals)
    if n <= size:
        return intervals
    rows = np.linspace(0, n - 1, size).astype(np.int64)
    codes, categories = intervals.chrom_codes()
    frame = pd.DataFrame(
        {
            "Chromosome": np.asarray(categories, dtype=object)[codes[rows]],
            "Start": intervals.starts[rows],
            "End": intervals.ends[rows],
        }
    )
    return Intervals.from_frame(frame, source="a sample")


def guess_build(intervals: Intervals, universe_index, universe_build: str) -> BuildGuess | None:
    """Whether a query lies in the universe better once lifted from another known build to the universe's.

    A sample of the query (:func:`sample_of`) is overlapped with the universe as it is, and lifted from each other
    build bedspace has a chain file for (to ``universe_build``) and overlapped again; the other build that brings
    most of it into the universe is returned, or ``None`` when there is none. Dropped intervals count as outside.
    """
    sample = sample_of(intervals)
    if not len(sample):
        return None
    as_is = universe_index.tokenize(sample).n_regions_in_universe / len(sample)
    best = None
    for source, target in CHAINS:
        if target != universe_build:
            continue
        lifted = lift(sample, name="sample", source=source, target=target)
        inside = (
            universe_index.tokenize(lifted.intervals()).n_regions_in_universe / len(sample) if lifted.rows.size else 0.0
        )
        guess = BuildGuess(source, float(as_is), float(inside))
        if best is None or guess.lifted > best.lifted:
            best = guess
    return best


# -- region sets: lifting them, telling their build ----------------------------------------------------------------
def lift_sets(
    named: list[tuple[str, Source]],
    *,
    source: str,
    target: str,
    chain: str | os.PathLike | None = None,
    max_stretch: float = MAX_STRETCH,
    what: str = "region set",
) -> tuple[list[tuple[str, pd.DataFrame]], list[LiftSummary]]:
    """Read named region sets and lift each from ``source`` to ``target``: frames and summaries, in order.

    A frame keeps its other columns and its row order (rows dropped are left out); a file's intervals come as
    ``Chromosome``, ``Start``, ``End`` sorted by position. Each frame's ``attrs["liftover"]`` holds its summary's
    :meth:`LiftSummary.record`. Each lift is logged (:meth:`LiftSummary.text`); a set that loses more than
    :data:`WARN_DROPPED` of its intervals gets a warning naming it and the reasons.
    """
    convert = converter(chain_file(source, target, chain=chain))
    lifted, summaries = [], []
    for name, src in named:
        result = lift_intervals(
            load_source(name, src), convert, name=name, source=source, target=target, max_stretch=max_stretch
        )
        if isinstance(src, pd.DataFrame):
            frame = src.iloc[result.rows].copy()
            chrom, start, end = locate_columns(src, source=f"region set {name!r}")
            frame[chrom] = result.chroms
            frame[start] = result.starts
            frame[end] = result.ends
        else:
            frame = result.to_frame().sort_values(["Chromosome", "Start", "End"], kind="stable", ignore_index=True)
        frame.attrs["liftover"] = result.summary.record()
        lifted.append((name, frame))
        summaries.append(result.summary)
        logg.info(f"    {result.summary.text()}")
    lossy = [s for s in summaries if s.n_regions and s.n_dropped > WARN_DROPPED * s.n_regions]
    if lossy:
        warn(
            f"lifting from {source} to {target} dropped more than {WARN_DROPPED:.0%} of the regions of "
            f"{len(lossy)} {what}(s): " + "; ".join(s.text() for s in lossy[:10])
        )
    total, kept = sum(s.n_regions for s in summaries), sum(s.n_lifted for s in summaries)
    logg.info(
        f"lifted {len(summaries)} {what}(s) from {source} to {target}: {kept:,} of {total:,} regions, "
        f"{total - kept:,} dropped"
    )
    return lifted, summaries


#: The share of a set's intervals that lifting may drop before a warning names it.
WARN_DROPPED = 0.05


def lifting(reference: str | None, assembly, *, what: str) -> str | None:
    """The build to lift from for coordinates of build ``assembly`` asked of a reference of build ``reference``.

    ``None`` when there is nothing to lift (``assembly`` not given, or the reference's). A reference whose build is
    not recorded cannot be lifted onto: an error saying how to record it, naming ``what`` (the reference).
    """
    assembly = build_name(assembly)
    if assembly is None or assembly == reference:
        return None
    if reference is None:
        raise ValueError(
            f"assembly={assembly!r}: the genome build of {what} is not recorded, so the query cannot be lifted onto "
            "it; record it when tokenizing (bs.pp.tokenize(..., assembly='hg19')), or lift the query yourself "
            "with bs.pp.liftover(..., source=..., target=...)"
        )
    build_name(assembly, option="assembly", known=True)
    return assembly


def resembled_builds(named: list[tuple[str, Source]], coverage: np.ndarray, universe) -> dict[str, BuildGuess]:
    """The sets whose coordinates look like another build than the universe's, with what tells it.

    Only sets with some but less than :data:`CHECK_BELOW` of their intervals in the universe are checked (a set
    with none is of another genome or empty, and is warned about as such), and only when the
    universe's build is recorded and bedspace has a chain file to it; a chain file that cannot be fetched (offline)
    skips the check, with a log line.
    """
    build = universe.assembly
    if build is None or not any(target == build for _, target in CHAINS):
        return {}
    found = {}
    for (name, src), share in zip(named, coverage, strict=True):
        if not 0 < share < CHECK_BELOW:  # none in the universe: another genome (warned about), or empty (nan)
            continue
        try:
            guess = guess_build(load_source(name, src), universe.index, build)
        except (OSError, ValueError) as err:
            logg.info(f"    could not tell the genome build of {name!r}: {err}")
            continue
        if guess is not None and guess.resembles:
            found[name] = guess
    return found


def warn_resembled(found: Mapping[str, BuildGuess], reference: str, *, what: str = "query") -> None:
    """One warning per build the sets resemble: which sets, what tells it, and how to lift them."""
    builds: dict[str, list[tuple[str, BuildGuess]]] = {}
    for name, guess in found.items():
        builds.setdefault(guess.build, []).append((name, guess))
    for build, sets in builds.items():
        shown = ", ".join(f"{name!r} ({g.as_is:.0%} → {g.lifted:.0%})" for name, g in sets[:10])
        more = f" and {len(sets) - 10} more" if len(sets) > 10 else ""
        warn(
            f"{len(sets)} {what}(s) look like {build} coordinates, not {reference} (the reference's build): lifted "
            f"from {build} to {reference}, far more of a sample of their regions lies in the universe than as "
            f"given (as given → lifted): {shown}{more}. Ask with assembly={build!r} (bedspace search --assembly "
            f"{build}) to lift them onto {reference}, or lift them first with "
            f"bs.pp.liftover(..., source={build!r}, target={reference!r})"
        )
