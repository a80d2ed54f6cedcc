"""Synthetic region sets: real ones perturbed bedshift-style (shift, add, cut, merge, drop)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numba
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._atomic import atomic_path, atomic_write_bytes
from .._formats.bed import Intervals, encoded_names, n_digits, read_intervals, write_int
from .._parallel import available_cores
from .._params import whole_number
from .._sources import COMPRESSED_SUFFIXES, bed_files_in, is_bed_name
from .._universe import read_chrom_sizes
from ._collection import RegionSetCollection, cache_dir

PathLike = str | os.PathLike

METADATA = "metadata.csv"
PLAN = ".perturb.json"  # what the folder holds; a rerun with the same plan resumes, another plan is refused
SUFFIX = ".bed.gz"
# gzip level 1 is ~10x faster than level 6 on BED text for ~12% larger files: writing 10^4-10^5 sets of ~10^5
# regions is bound by compression, not by the perturbation.
COMPRESSLEVEL = 1
MIN_NAME_DIGITS = 5  # file i is "00042_<source>.bed.gz" for up to 10^5 sets, whatever n_sets is
_FILE_KEY = "file_name"
_NO_LIMIT = np.iinfo(np.int64).max
_TAB, _NL = 9, 10


@dataclass(frozen=True)
class _Rates:
    """The perturbation of every synthetic set (validated)."""

    shift_rate: float
    shift_mean: float
    shift_sd: float
    add_rate: float
    cut_rate: float
    merge_rate: float
    drop_rate: float


@dataclass(frozen=True)
class _Reference:
    """Universe regions (for ``add``) and chromosome sizes (to keep shifted regions on their chromosome)."""

    names: list[str]  #: universe chromosome names
    codes: np.ndarray  #: per universe region, into ``names``
    starts: np.ndarray
    ends: np.ndarray
    chrom_sizes: dict[str, int]


def perturb(
    beds: RegionSetCollection | PathLike | Sequence[PathLike],
    metadata: PathLike | pd.DataFrame | None = None,
    universe: PathLike | None = None,
    *,
    n_sets: int | None = None,
    sampling: Literal["cycle", "random"] = "cycle",
    shift_rate: float = 0.0,
    shift_mean: float = 0.0,
    shift_sd: float = 150.0,
    add_rate: float = 0.0,
    cut_rate: float = 0.0,
    merge_rate: float = 0.0,
    drop_rate: float = 0.0,
    chrom_sizes: PathLike | Mapping[str, int] | None = None,
    out_dir: PathLike | None = None,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> RegionSetCollection:
    """**Synthetic** region sets: copies of real ones with regions shifted, added, cut, merged and dropped.

    The perturbations of bedshift (Gu, Cho & Sheffield 2021, *Genome Biology* 22:238,
    doi:10.1186/s13059-021-02440-w), applied in its order — shift, add, cut, merge, drop — to ``n_sets`` copies
    of the source sets. Each rate is the share of the regions present at that step that the operation touches
    (``round(rate × n)`` regions, halves rounded up, drawn without replacement):

    * **shift**: a region moves by an integer drawn from a normal distribution (``shift_mean``, ``shift_sd``);
      a move that would start before 0 (or end past the chromosome, when its size is known) is clipped to stop
      there, keeping the region's width.
    * **add**: universe regions, drawn uniformly without replacement, are added as they are.
    * **cut**: a region of at least 2 bp becomes two, split at its midpoint.
    * **merge**: a region is joined with the next one on its chromosome (in sorted order) into one spanning
      both; chains of joined pairs become one region. Each join removes one region.
    * **drop**: regions are removed.

    The sets made are synthetic: use them to measure robustness and speed, never as biological data. Their
    metadata says so (``synthetic`` is ``True``) and records how each was made.

    Parameters
    ----------
    beds
        The real sets: a :class:`RegionSetCollection` (its metadata, default universe and chromosome sizes are
        used unless given), a folder of BED files or a list of BED paths.
    metadata
        CSV/TSV path or DataFrame with a ``file_name`` column naming every source file; its other columns are
        copied to the synthetic sets made from that file (columns named like those ``perturb`` adds are
        replaced). Rows of other files are ignored.
    universe
        BED path of the universe whose regions ``add`` draws; needed when ``add_rate > 0``. It becomes the
        result's default universe.
    n_sets
        How many sets to make (default: one per source).
    sampling
        Which source each set copies: ``"cycle"`` takes the sources in order, again and again (every source
        equally often), ``"random"`` draws them uniformly with replacement.
    shift_rate, shift_mean, shift_sd
        Share of regions shifted (0–1), mean and standard deviation of the shift in bp (bedshift's defaults:
        0 and 150).
    add_rate
        Universe regions added, as a share of the set's regions (≥ 0; may exceed 1).
    cut_rate, merge_rate, drop_rate
        Share of regions cut in two, joined with their next neighbour, and removed (each 0–1).
    chrom_sizes
        ``*.chrom.sizes`` path or mapping chromosome → size; shifts stop at the chromosome's end. Without it,
        only the start of the chromosome bounds a shift.
    out_dir
        Folder for the sets and their ``metadata.csv``; it must be empty, new or hold an earlier run of the same
        call, which is resumed (finished files are kept). Default: a folder named by the inputs and options in
        :func:`bedspace.datasets.cache_dir`, so repeating a call reuses its files.
    random_state
        Seed. Set ``i`` is made with its own generator, ``numpy.random.default_rng(seed)`` (``seed`` is in the
        metadata), so its content does not depend on ``n_jobs`` or on the other sets, and the first sets of a
        larger ``n_sets`` are the same files.
    n_jobs
        Threads writing sets (default: every available core).

    Returns
    -------
    :class:`RegionSetCollection` with ``beds`` (gzipped BED3 files ``00000_<source>.bed.gz``, ...; sorted by
    chromosome name, start and end like ``sort -k1,1 -k2,2n``, chromosome names as in the source), ``metadata``
    (``file_name``, the source's columns, then ``source_file``, ``synthetic``, ``seed``, the rates,
    ``shift_mean``, ``shift_sd`` and ``n_regions``), the universes (the source collection's and ``universe``,
    the default) and the chromosome sizes. Pass it on as
    ``bs.pp.tokenize(result.beds, result.universe, metadata=result.metadata)``.

    Raises
    ------
    ValueError
        A rate or option out of range (named with its value), a source without a metadata row, or an
        ``add_rate`` that asks for more regions than the universe has.
    FileExistsError
        ``out_dir`` holds other files or a run with other options.

    Examples
    --------
    >>> import bedspace as bs
    >>> data = bs.datasets.insulators()
    >>> noisy = bs.datasets.perturb(data, n_sets=16, drop_rate=0.2, add_rate=0.2, shift_rate=0.5)
    >>> adata = bs.pp.tokenize(noisy.beds, data.universe, metadata=noisy.metadata)
    >>> adata.n_obs, bool(adata.obs["synthetic"].all())
    (16, True)
    """
    collection = beds if isinstance(beds, RegionSetCollection) else None
    if collection is not None:
        beds = collection.beds
        metadata = collection.metadata if metadata is None else metadata
        universe = universe if universe is not None else collection.universes.get(collection.default_universe)
        chrom_sizes = collection.chrom_sizes if chrom_sizes is None else chrom_sizes
    rates = _Rates(
        shift_rate=_fraction("shift_rate", shift_rate),
        shift_mean=_number("shift_mean", shift_mean),
        shift_sd=_number("shift_sd", shift_sd, minimum=0.0),
        add_rate=_number("add_rate", add_rate, minimum=0.0),
        cut_rate=_fraction("cut_rate", cut_rate),
        merge_rate=_fraction("merge_rate", merge_rate),
        drop_rate=_fraction("drop_rate", drop_rate),
    )
    if sampling not in ("cycle", "random"):
        raise ValueError(f"sampling must be 'cycle' or 'random', got {sampling!r}")
    seed = _integer("random_state", random_state, minimum=0)
    threads = _integer("n_jobs", n_jobs, minimum=1) if n_jobs is not None else available_cores()

    sources = _source_files(beds)
    n_sets = len(sources) if n_sets is None else _integer("n_sets", n_sets, minimum=1)
    labels = _source_labels(metadata, sources)
    universe_path = Path(universe) if universe is not None else None
    if universe_path is not None and not universe_path.is_file():
        raise FileNotFoundError(f"universe not found: {universe_path}")
    if rates.add_rate > 0 and universe_path is None:
        raise ValueError(f"add_rate={add_rate!r} draws regions from a universe: pass universe=")
    sizes = _chrom_sizes(chrom_sizes)

    # Two independent streams, so that the sources and the seeds of the first k sets do not depend on n_sets.
    source_stream, seed_stream = np.random.SeedSequence(seed).spawn(2)
    if sampling == "cycle":
        picks = np.arange(n_sets) % len(sources)
    else:
        picks = np.random.default_rng(source_stream).integers(0, len(sources), size=n_sets)
    seeds = np.random.default_rng(seed_stream).integers(0, np.iinfo(np.int64).max, size=n_sets, dtype=np.int64)
    digits = max(MIN_NAME_DIGITS, len(str(n_sets - 1)))
    names = [f"{i:0{digits}d}_{_stem(sources[s].name)}{SUFFIX}" for i, s in enumerate(picks)]

    # what decides the files and the metadata (a universe or chromosome sizes that are not used do not)
    plan = {
        "sources": [[p.name, p.stat().st_size] for p in sources],
        "labels": hashlib.sha256(labels.to_csv(index=False).encode()).hexdigest(),
        "universe": [universe_path.name, universe_path.stat().st_size] if rates.add_rate > 0 else None,
        "chrom_sizes": sizes if rates.shift_rate > 0 else None,
        "options": {**vars(rates), "n_sets": n_sets, "sampling": sampling, "random_state": seed},
    }
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    source_name = collection.name if collection is not None else "region_sets"
    folder = Path(out_dir) if out_dir is not None else cache_dir() / "perturbed" / f"{source_name}-{digest[:16]}"
    _claim(folder, plan)

    if not ((folder / METADATA).exists() and all((folder / name).exists() for name in names)):
        reference = _reference(universe_path if rates.add_rate > 0 else None, sizes)
        n_regions = _write_all(folder, sources, picks, seeds, names, rates, reference, threads)
        table = labels.iloc[picks].reset_index(drop=True)
        table = table.drop(columns=[c for c in table.columns if c in _PERTURBATION_COLUMNS])
        table.insert(0, _FILE_KEY, names)
        table["source_file"] = [sources[s].name for s in picks]
        table["synthetic"] = True
        table["seed"] = seeds
        for option, value in vars(rates).items():
            table[option] = value
        table["n_regions"] = n_regions
        # written last: a folder with its metadata is complete
        atomic_write_bytes(table.to_csv(index=False).encode(), folder / METADATA)

    universes = dict(collection.universes) if collection is not None else {}
    default = collection.default_universe if collection is not None else ""
    if universe_path is not None:
        default = next((k for k, v in universes.items() if Path(v) == universe_path), "universe")
        universes.setdefault(default, universe_path)
    return RegionSetCollection(
        name=f"{source_name}_perturbed",
        beds=folder,
        metadata=folder / METADATA,
        universes=universes,
        default_universe=default,
        chrom_sizes=Path(chrom_sizes) if isinstance(chrom_sizes, str | os.PathLike) else None,
    )


_PERTURBATION_COLUMNS = (
    "source_file",
    "synthetic",
    "seed",
    *_Rates.__dataclass_fields__,
    "n_regions",
)


# --- options -------------------------------------------------------------------------------------------------


def _number(name: str, value, *, minimum: float | None = None) -> float:
    """A finite real number (not a bool), at least ``minimum``; the error names the option."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    return number


def _fraction(name: str, value) -> float:
    number = _number(name, value)
    if not 0 <= number <= 1:
        raise ValueError(f"{name} must be between 0 and 1 (a share of the regions); got {value!r}")
    return number


def _integer(name: str, value, *, minimum: int) -> int:
    return whole_number(value, name, minimum=minimum, expected=f"an integer >= {minimum}")


# --- inputs --------------------------------------------------------------------------------------------------


def _source_files(beds) -> list[Path]:
    if isinstance(beds, str | os.PathLike):
        path = Path(beds)
        if not path.exists():
            raise FileNotFoundError(f"region sets not found: {path}")
        files = bed_files_in(path) if path.is_dir() else [path]
    elif isinstance(beds, Sequence):
        files = [Path(p) for p in beds]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} BED file(s) not found: {', '.join(missing[:10])}")
    else:
        raise TypeError(
            f"beds must be a RegionSetCollection, a folder or a list of BED paths; got {type(beds).__name__}"
        )
    if not files:
        raise ValueError("no source region sets given")
    names = pd.Index([p.name for p in files])
    if names.has_duplicates:
        raise ValueError(f"source file names must be unique; repeated: {sorted(set(names[names.duplicated()]))}")
    return files


def _stem(name: str) -> str:
    """``x.narrowPeak.gz`` → ``x``: the source's name without its BED and compression suffixes."""
    lower = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
            break
    if is_bed_name(name):
        name = name[: name.rindex(".")]
    return name


def _source_labels(metadata, sources: list[Path]) -> pd.DataFrame:
    """The metadata row of every source (in source order), without ``file_name``; values copied as written."""
    if metadata is None:
        return pd.DataFrame(index=range(len(sources)))
    if isinstance(metadata, pd.DataFrame):
        table, where = metadata, "metadata"
    else:
        path = Path(metadata)
        if not path.is_file():
            raise FileNotFoundError(f"metadata file not found: {path}")
        sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz", ".txt")) else ","
        # text, as written: the synthetic sets' metadata then reads back exactly like the source's
        table, where = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False), str(path)
    if _FILE_KEY not in table.columns:
        raise ValueError(f"{where}: no '{_FILE_KEY}' column; columns are {list(table.columns)}")
    keys = table[_FILE_KEY].astype(str)
    repeated = keys[keys.duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{where}: '{_FILE_KEY}' values must be unique; repeated: {repeated[:10]}")
    missing = [p.name for p in sources if p.name not in set(keys)]
    if missing:
        raise ValueError(f"{where} has no row for {len(missing)} source file(s): {missing[:10]}")
    rows = table.set_index(keys).loc[[p.name for p in sources]]
    return rows.drop(columns=_FILE_KEY).reset_index(drop=True)


def _chrom_sizes(chrom_sizes) -> dict[str, int]:
    return {} if chrom_sizes is None else read_chrom_sizes(chrom_sizes)


def _reference(universe: Path | None, sizes: dict[str, int]) -> _Reference:
    if universe is None:
        empty = np.zeros(0, np.int64)
        return _Reference([], empty.astype(np.int32), empty, empty, sizes)
    regions = read_intervals(universe)
    codes, names = regions.chrom_codes()
    return _Reference(names, codes, regions.starts, regions.ends, sizes)


def _claim(folder: Path, plan: dict) -> None:
    """Make ``folder`` ours: new, empty, or holding this same plan (then its finished files are reused)."""
    record = folder / PLAN
    if record.exists():
        earlier = json.loads(record.read_text())
        if earlier != json.loads(json.dumps(plan)):
            changed = sorted(
                k for k in set(earlier["options"]) | set(plan["options"])
                if earlier["options"].get(k) != plan["options"].get(k)
            )  # fmt: skip
            what = f"options {changed}" if changed else "sources, metadata, universe or chromosome sizes"
            raise FileExistsError(
                f"{folder} holds region sets perturbed differently (other {what}); delete it or choose another out_dir"
            )
        for leftover in folder.glob(".*.tmp"):  # from an interrupted write; the file is rewritten
            leftover.unlink(missing_ok=True)
        return
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"out_dir {folder} is not empty and holds no perturbed sets; choose an empty folder")
    atomic_write_bytes(json.dumps(plan, sort_keys=True, indent=1).encode(), record)


# --- perturbing and writing ----------------------------------------------------------------------------------


def _write_all(
    folder: Path,
    sources: list[Path],
    picks: np.ndarray,
    seeds: np.ndarray,
    names: list[str],
    rates: _Rates,
    reference: _Reference,
    threads: int,
) -> list[int]:
    """Write every set not already there; returns the number of regions of each set."""
    n_regions = [0] * len(names)
    # one task per source, so that a source copied many times is read once
    tasks: dict[int, list[int]] = {}
    for i, s in enumerate(picks):
        tasks.setdefault(int(s), []).append(i)
    bar = tqdm(total=len(names), desc="perturbing region sets", unit="file")
    lock = threading.Lock()

    def run(source: int, outputs: list[int]) -> None:
        regions = None
        for i in outputs:
            path = folder / names[i]
            if path.exists():  # written atomically by an earlier run: complete
                n_regions[i] = gzip.decompress(path.read_bytes()).count(b"\n")
            else:
                regions = read_intervals(sources[source]) if regions is None else regions
                rng = np.random.default_rng(int(seeds[i]))
                chroms, codes, starts, ends = _perturb_one(regions, rates, reference, rng, source=sources[source])
                text = _format_bed3(*encoded_names(chroms), codes, starts, ends)
                with atomic_path(path) as tmp:
                    tmp.write_bytes(gzip.compress(text.tobytes(), compresslevel=COMPRESSLEVEL, mtime=0))
                n_regions[i] = int(starts.size)
            with lock:
                bar.update(1)

    try:
        if threads <= 1 or len(tasks) <= 1:
            for source, outputs in tasks.items():
                run(source, outputs)
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(tasks))) as pool:
                futures = [pool.submit(run, source, outputs) for source, outputs in tasks.items()]
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for future in pending:
                    future.cancel()
                for future in done:
                    future.result()
    finally:
        bar.close()
    return n_regions


def _count(rate: float, n: int) -> int:
    """``round(rate × n)``, halves up (Python's ``round`` would send 0.5 to the nearest even number)."""
    return int(np.floor(rate * n + 0.5))


def _perturb_one(
    regions: Intervals, rates: _Rates, reference: _Reference, rng: np.random.Generator, *, source: Path
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Shift, add, cut, merge, drop (bedshift's order); returns chromosome names and sorted codes, starts, ends.

    Chromosome codes index the returned names, which are sorted, so sorting by code sorts by name.
    """
    source_codes, source_names = regions.chrom_codes()
    chroms = sorted(set(source_names) | (set(reference.names) if rates.add_rate > 0 else set()))
    rank = {c: i for i, c in enumerate(chroms)}
    codes = np.array([rank[c] for c in source_names], dtype=np.int32)[source_codes]
    starts = regions.starts.copy()
    ends = regions.ends.copy()

    n = starts.size
    if k := _count(rates.shift_rate, n):
        rows = rng.choice(n, k, replace=False)
        moves = np.rint(rng.normal(rates.shift_mean, rates.shift_sd, k)).astype(np.int64)
        limits = np.array([reference.chrom_sizes.get(c, _NO_LIMIT) for c in chroms], dtype=np.int64)
        # clipped, not skipped: the region stops at the chromosome's edge, keeping its width
        moves = np.maximum(np.minimum(moves, limits[codes[rows]] - ends[rows]), -starts[rows])
        starts[rows] += moves
        ends[rows] += moves

    if k := _count(rates.add_rate, n):
        available = reference.starts.size
        if k > available:
            raise ValueError(
                f"add_rate={rates.add_rate!r} asks for {k} universe regions for {source.name} "
                f"({n} regions), but the universe has {available}"
            )
        rows = rng.choice(available, k, replace=False)
        to_code = np.array([rank[c] for c in reference.names], dtype=np.int32)
        codes = np.concatenate([codes, to_code[reference.codes[rows]]])
        starts = np.concatenate([starts, reference.starts[rows]])
        ends = np.concatenate([ends, reference.ends[rows]])

    n = starts.size
    if k := _count(rates.cut_rate, n):
        cuttable = np.flatnonzero(ends - starts >= 2)  # both halves keep at least 1 bp
        rows = rng.choice(cuttable, min(k, cuttable.size), replace=False)
        middles = (starts[rows] + ends[rows]) // 2
        codes = np.concatenate([codes, codes[rows]])
        starts = np.concatenate([starts, middles])
        ends = np.concatenate([ends, ends[rows]])
        ends[rows] = middles

    order = np.lexsort((ends, starts, codes))
    codes, starts, ends = codes[order], starts[order], ends[order]

    n = starts.size
    if k := _count(rates.merge_rate, n):
        # pair i joins region i and region i + 1 (the next one on the same chromosome)
        pairs = np.flatnonzero(codes[:-1] == codes[1:])
        joined = np.zeros(n, bool)
        joined[rng.choice(pairs, min(k, pairs.size), replace=False) + 1] = True
        heads = np.flatnonzero(~joined)
        # a region may reach past the next one's end: the merged region ends at the furthest end
        codes, starts, ends = codes[heads], starts[heads], np.maximum.reduceat(ends, heads)
        order = np.lexsort((ends, starts, codes))
        codes, starts, ends = codes[order], starts[order], ends[order]

    n = starts.size
    if k := _count(rates.drop_rate, n):
        keep = np.ones(n, bool)
        keep[rng.choice(n, k, replace=False)] = False
        codes, starts, ends = codes[keep], starts[keep], ends[keep]
    return chroms, codes, starts, ends


@numba.njit(cache=True, nogil=True)
def _format_bed3(names, bounds, codes, starts, ends):
    """BED3 text of the rows (``chrom<TAB>start<TAB>end<NL>``), far faster than pandas' ``to_csv``."""
    size = 0
    for i in range(codes.size):
        c = codes[i]
        size += bounds[c + 1] - bounds[c] + n_digits(starts[i]) + n_digits(ends[i]) + 3
    out = np.empty(size, np.uint8)
    pos = 0
    for i in range(codes.size):
        c = codes[i]
        for k in range(bounds[c], bounds[c + 1]):
            out[pos] = names[k]
            pos += 1
        out[pos] = _TAB
        pos = write_int(out, pos + 1, starts[i])
        out[pos] = _TAB
        pos = write_int(out, pos + 1, ends[i])
        out[pos] = _NL
        pos += 1
    return out
