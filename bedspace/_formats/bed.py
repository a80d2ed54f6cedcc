"""Reading BED files: a validating byte-level parser and its public wrapper, :func:`read_bed`."""

from __future__ import annotations

import gzip
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyranges1 as pr

from .._atomic import atomic_write_bytes
from .._warnings import BEDSpaceWarning

PathLike = str | os.PathLike

_TAB, _NL, _CR, _SPACE, _MINUS, _HASH = 9, 10, 13, 32, 45, 35
_ZERO, _NINE = 48, 57
_MAX_DIGITS = 18  # fits in int64 with room to spare

# Error codes of the parser, turned into messages in Python.
_OK, _TOO_FEW_COLUMNS, _BAD_START, _BAD_END, _NEGATIVE_START, _END_BEFORE_START, _EMPTY_CHROM = range(7)
_MESSAGES = {
    _TOO_FEW_COLUMNS: "fewer than 3 tab-separated columns (chrom, start, end)",
    _BAD_START: "start (column 2) is not a non-negative integer",
    _BAD_END: "end (column 3) is not an integer",
    _NEGATIVE_START: "start (column 2) is negative",
    _END_BEFORE_START: "end (column 3) is smaller than start (column 2)",
    _EMPTY_CHROM: "chromosome (column 1) is empty",
}


@dataclass(frozen=True)
class Intervals:
    """Intervals of one region set, grouped in runs of equal chromosome (as a BED file lists them).

    Attributes
    ----------
    run_chroms
        Chromosome of each run; a chromosome may appear in several runs when the file is not grouped.
    run_bounds
        ``run_bounds[i]:run_bounds[i + 1]`` are the rows of run ``i``.
    starts, ends
        0-based, half-open coordinates (int64).
    """

    run_chroms: list[str]
    run_bounds: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return int(self.starts.size)

    @property
    def chromosomes(self) -> set[str]:
        """The distinct chromosome names."""
        return set(self.run_chroms)

    def chrom_codes(self) -> tuple[np.ndarray, list[str]]:
        """Per-row chromosome codes into a list of distinct names (in order of first appearance)."""
        categories = list(dict.fromkeys(self.run_chroms))
        code_of = {c: i for i, c in enumerate(categories)}
        run_codes = np.array([code_of[c] for c in self.run_chroms], dtype=np.int32)
        return np.repeat(run_codes, np.diff(self.run_bounds)), categories

    def to_frame(self) -> pd.DataFrame:
        """As a DataFrame with pyranges' columns ``Chromosome``, ``Start``, ``End``."""
        codes, categories = self.chrom_codes()
        return pd.DataFrame(
            {
                "Chromosome": pd.Categorical.from_codes(codes, categories=categories),
                "Start": self.starts,
                "End": self.ends,
            }
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, source: str) -> Intervals:
        """From a DataFrame/PyRanges with ``Chromosome, Start, End`` or ``chrom, start, end`` columns."""
        columns = _locate_columns(frame, source=source)
        chrom = frame[columns[0]].astype(str).to_numpy()
        try:
            starts = pd.to_numeric(frame[columns[1]], errors="raise").to_numpy()
            ends = pd.to_numeric(frame[columns[2]], errors="raise").to_numpy()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: start/end columns must be integers ({err})") from None
        for name, values in (("start", starts), ("end", ends)):
            if values.dtype.kind == "f" and (np.isnan(values).any() or (values != np.round(values)).any()):
                row = int(np.flatnonzero(np.isnan(values) | (values != np.round(values)))[0])
                raise ValueError(f"{source}, row {row}: {name} is not an integer ({values[row]!r})")
            if values.dtype.kind not in "iuf":
                raise ValueError(f"{source}: {name} column must be integers, got dtype {values.dtype}")
        starts = starts.astype(np.int64)
        ends = ends.astype(np.int64)
        _check_coordinates(starts, ends, chrom, source=source, unit="row", offset=0)
        if chrom.size == 0:
            return cls([], np.zeros(1, np.int64), starts, ends)
        change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
        bounds = np.concatenate([[0], change, [chrom.size]]).astype(np.int64)
        return cls([str(chrom[i]) for i in bounds[:-1]], bounds, starts, ends)


def _locate_columns(frame: pd.DataFrame, *, source: str) -> tuple[str, str, str]:
    for names in (("Chromosome", "Start", "End"), ("chrom", "start", "end"), ("chr", "start", "end")):
        if all(n in frame.columns for n in names):
            return names
    raise ValueError(
        f"{source}: a region frame needs columns 'Chromosome', 'Start', 'End' (pyranges) or "
        f"'chrom', 'start', 'end'; it has {list(frame.columns)}"
    )


def _check_coordinates(starts, ends, chrom, *, source: str, unit: str, offset: int) -> None:
    bad = np.flatnonzero(starts < 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{source}, {unit} {i + offset}: start is negative ({starts[i]})")
    bad = np.flatnonzero(ends < starts)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{source}, {unit} {i + offset}: end ({ends[i]}) is smaller than start ({starts[i]})")
    if chrom.size and (chrom == "").any():
        i = int(np.flatnonzero(chrom == "")[0])
        raise ValueError(f"{source}, {unit} {i + offset}: chromosome is empty")


_TRACK = np.frombuffer(b"track", dtype=np.uint8)
_BROWSER = np.frombuffer(b"browser", dtype=np.uint8)


@numba.njit(cache=True, nogil=True)
def _starts_with_word(buf, pos, end, word):
    n = word.size
    if end - pos < n:
        return False
    for k in range(n):
        if buf[pos + k] != word[k]:
            return False
    return end - pos == n or buf[pos + n] == _SPACE or buf[pos + n] == _TAB


@numba.njit(cache=True, nogil=True)
def _is_header(buf, pos, end):
    """`track`, `browser` and `#` lines are not intervals."""
    return buf[pos] == _HASH or _starts_with_word(buf, pos, end, _TRACK) or _starts_with_word(buf, pos, end, _BROWSER)


@numba.njit(cache=True, nogil=True)
def _parse_int(buf, pos, end):
    """Parse a (possibly negative) decimal integer in buf[pos:end]; returns (value, ok)."""
    negative = False
    if pos < end and buf[pos] == _MINUS:
        negative = True
        pos += 1
    if pos >= end or end - pos > _MAX_DIGITS:
        return 0, False
    value = 0
    for k in range(pos, end):
        c = buf[k]
        if c < _ZERO or c > _NINE:
            return 0, False
        value = value * 10 + (c - _ZERO)
    return (-value if negative else value), True


@numba.njit(cache=True, nogil=True)
def _parse_bed3(buf):
    """Parse the first three columns of every data line of a BED text.

    Returns starts, ends, run_rows, run_chrom_pos, run_chrom_end, n_rows, n_runs, error, error_line,
    error_pos. ``run_*`` describe runs of rows with byte-identical chromosome names.
    """
    n = buf.size
    max_rows = 1
    for k in range(n):
        if buf[k] == _NL:
            max_rows += 1
    starts = np.empty(max_rows, np.int64)
    ends = np.empty(max_rows, np.int64)
    run_rows = np.empty(max_rows + 1, np.int64)
    run_chrom_pos = np.empty(max_rows, np.int64)
    run_chrom_end = np.empty(max_rows, np.int64)
    n_rows = 0
    n_runs = 0
    line_no = 0
    pos = 0
    prev_pos = -1
    prev_end = -1
    while pos < n:
        line_no += 1
        eol = pos
        while eol < n and buf[eol] != _NL:
            eol += 1
        next_pos = eol + 1
        end = eol
        while end > pos and (buf[end - 1] == _CR or buf[end - 1] == _SPACE):
            end -= 1
        if end == pos or _is_header(buf, pos, end):
            pos = next_pos
            continue
        # column 1: chromosome
        t1 = pos
        while t1 < end and buf[t1] != _TAB:
            t1 += 1
        if t1 == end:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _TOO_FEW_COLUMNS, line_no, pos
        if t1 == pos:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _EMPTY_CHROM, line_no, pos
        # column 2: start
        t2 = t1 + 1
        while t2 < end and buf[t2] != _TAB:
            t2 += 1
        if t2 == end:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _TOO_FEW_COLUMNS, line_no, pos
        start, ok = _parse_int(buf, t1 + 1, t2)
        if not ok:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _BAD_START, line_no, pos
        if start < 0:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _NEGATIVE_START, line_no, pos
        # column 3: end
        t3 = t2 + 1
        while t3 < end and buf[t3] != _TAB:
            t3 += 1
        stop, ok = _parse_int(buf, t2 + 1, t3)
        if not ok:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _BAD_END, line_no, pos
        if stop < start:
            return starts, ends, run_rows, run_chrom_pos, run_chrom_end, 0, 0, _END_BEFORE_START, line_no, pos
        same = prev_pos >= 0 and (t1 - pos) == (prev_end - prev_pos)
        if same:
            for k in range(t1 - pos):
                if buf[pos + k] != buf[prev_pos + k]:
                    same = False
                    break
        if not same:
            run_rows[n_runs] = n_rows
            run_chrom_pos[n_runs] = pos
            run_chrom_end[n_runs] = t1
            n_runs += 1
            prev_pos = pos
            prev_end = t1
        starts[n_rows] = start
        ends[n_rows] = stop
        n_rows += 1
        pos = next_pos
    run_rows[n_runs] = n_rows
    return starts, ends, run_rows, run_chrom_pos, run_chrom_end, n_rows, n_runs, _OK, 0, 0


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    return data


def parse_bed_bytes(data: bytes, *, source: str) -> Intervals:
    """Parse BED text (already decompressed); errors name ``source`` and the line number."""
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends, run_rows, chrom_pos, chrom_end, n_rows, n_runs, error, error_line, error_pos = _parse_bed3(buf)
    if error != _OK:
        line_end = data.find(b"\n", error_pos)
        line = data[error_pos : line_end if line_end >= 0 else len(data)].decode("utf-8", "replace")
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise ValueError(f"{source}, line {error_line}: {_MESSAGES[error]}: {shown.rstrip()!r}")
    try:
        run_chroms = [data[chrom_pos[i] : chrom_end[i]].decode("utf-8") for i in range(n_runs)]
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: chromosome names must be UTF-8 text ({err})") from None
    return Intervals(run_chroms, run_rows[: n_runs + 1].copy(), starts[:n_rows].copy(), ends[:n_rows].copy())


def read_intervals(path: PathLike) -> Intervals:
    """Read a BED file into :class:`Intervals` (the fast internal form used by tokenization)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"BED file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a BED file, got a folder: {path}")
    return parse_bed_bytes(_read_bytes(path), source=str(path))


def read_bed(path: PathLike) -> pr.PyRanges:
    """Read a BED file (plain or gzipped) into a :class:`pyranges1.PyRanges`.

    Accepts any BED-like text with at least three tab-separated columns: BED3–BED12, narrowPeak, broadPeak.
    ``track``, ``browser`` and ``#`` lines and blank lines are skipped. Only the interval columns are kept.

    Parameters
    ----------
    path
        Path to a ``.bed``, ``.bed.gz``, ``.narrowPeak(.gz)`` or ``.broadPeak(.gz)`` file. Gzip is recognised
        by content, not by name.

    Returns
    -------
    PyRanges with columns ``Chromosome`` (categorical, names kept exactly as written), ``Start`` and ``End``
    (int64, 0-based, half-open), in file order.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A malformed line: fewer than 3 columns, a non-integer coordinate, a negative start or an end before its
        start. The message names the file and the line number.

    Warns
    -----
    BEDSpaceWarning
        The file holds no intervals (an empty region set is returned).
    """
    intervals = read_intervals(path)
    if len(intervals) == 0:
        warnings.warn(f"{path}: no intervals in this file; it is an empty region set", BEDSpaceWarning, stacklevel=2)
    return pr.PyRanges(intervals.to_frame())


def write_bed(ranges: pd.DataFrame, path: PathLike) -> Path:
    """Write intervals as BED3, atomically; gzipped when the name ends in ``.gz``.

    Parameters
    ----------
    ranges
        A PyRanges or DataFrame with ``Chromosome, Start, End`` or ``chrom, start, end`` columns.
    path
        Where to write.

    Returns
    -------
    The path written.
    """
    columns = _locate_columns(ranges, source="intervals")
    text = ranges[list(columns)].to_csv(sep="\t", header=False, index=False).encode()
    path = Path(path)
    atomic_write_bytes(gzip.compress(text, compresslevel=6, mtime=0) if path.name.endswith(".gz") else text, path)
    return path
