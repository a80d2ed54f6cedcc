"""Reading BED files: a validating byte-level parser and its public wrapper, :func:`read_bed`."""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd
from isal import igzip, isal_zlib

from .._atomic import atomic_write_bytes
from .._quiet import pyranges
from .._warnings import excerpt, warn

if TYPE_CHECKING:
    import pyranges1 as pr

PathLike = str | os.PathLike

_TAB, _NL, _CR, _SPACE, _MINUS, _HASH = 9, 10, 13, 32, 45, 35
_ZERO, _NINE = 48, 57
_INT64_MAX = 9223372036854775807
_INT64_MAX_TENTH, _INT64_MAX_LAST = divmod(_INT64_MAX, 10)  # value * 10 + digit overflows past these
_SAFE_DIGITS = 18  # any 18-digit number fits in int64: no overflow check needed

# Error codes of the parser, turned into messages by _describe_error.
(
    _OK,
    _TOO_FEW_COLUMNS,
    _BAD_START,
    _BAD_END,
    _NEGATIVE_START,
    _END_BEFORE_START,
    _EMPTY_CHROM,
    _START_TOO_LARGE,
    _END_TOO_LARGE,
    _NEGATIVE_END,
    _SPACE_IN_CHROM,
    _CONTROL_IN_CHROM,
) = range(12)
# Outcomes of _parse_int.
_INT_OK, _INT_BAD, _INT_TOO_LARGE = range(3)


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
            raise ValueError(
                f"{source}: start/end columns must be integers ({excerpt(str(err), quote=False)})"
            ) from None
        for name, values in (("start", starts), ("end", ends)):
            if values.dtype.kind == "f" and (np.isnan(values).any() or (values != np.round(values)).any()):
                row = int(np.flatnonzero(np.isnan(values) | (values != np.round(values)))[0])
                raise ValueError(f"{source}, row {row}: {name} is not an integer ({values[row]!r})")
            if values.dtype.kind not in "iuf":
                raise ValueError(f"{source}: {name} column must be integers, got dtype {values.dtype}")
            too_large = _beyond_int64(values)
            if too_large.any():
                row = int(np.flatnonzero(too_large)[0])
                raise ValueError(
                    f"{source}, row {row}: {name} is too large: {values[row].item()!r} does not fit in a 64-bit integer"
                )
        starts = starts.astype(np.int64)
        ends = ends.astype(np.int64)
        _check_coordinates(starts, ends, chrom, source=source, unit="row", offset=0)
        if chrom.size == 0:
            return cls([], np.zeros(1, np.int64), starts, ends)
        change = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
        bounds = np.concatenate([[0], change, [chrom.size]]).astype(np.int64)
        return cls([str(chrom[i]) for i in bounds[:-1]], bounds, starts, ends)


def _beyond_int64(values: np.ndarray) -> np.ndarray:
    """Where ``values`` do not fit in int64; ``astype(np.int64)`` would wrap them around silently."""
    if values.dtype.kind == "f":
        return np.abs(values) >= 2.0**63  # 2**63 - 1 is not a float: the bound rounds up to 2**63
    if values.dtype.kind == "u":
        return values > _INT64_MAX
    return np.zeros(values.shape, dtype=bool)


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
def _is_blank(buf, pos, end):
    for k in range(pos, end):
        if buf[k] != _SPACE and buf[k] != _TAB:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _parse_int(buf, pos, end):
    """Parse a (possibly negative) decimal integer in buf[pos:end]; returns (value, _INT_* outcome).

    A value is judged by whether it fits in int64, not by its number of digits; a non-digit anywhere wins over an
    overflow (``99999999999999999999x`` is not an integer at all).
    """
    negative = False
    if pos < end and buf[pos] == _MINUS:
        negative = True
        pos += 1
    if pos >= end:
        return 0, _INT_BAD
    if end - pos > _SAFE_DIGITS:
        return _parse_long_int(buf, pos, end, negative)
    value = 0
    for k in range(pos, end):
        c = buf[k]
        if c < _ZERO or c > _NINE:
            return 0, _INT_BAD
        value = value * 10 + (c - _ZERO)
    return (-value if negative else value), _INT_OK


@numba.njit(cache=True, nogil=True)
def _parse_long_int(buf, pos, end, negative):
    """:func:`_parse_int` for numbers too long to be sure they fit (rare: kept off the fast path)."""
    value = 0
    overflow = False
    for k in range(pos, end):
        c = buf[k]
        if c < _ZERO or c > _NINE:
            return 0, _INT_BAD
        digit = c - _ZERO
        if overflow or value > _INT64_MAX_TENTH or (value == _INT64_MAX_TENTH and digit > _INT64_MAX_LAST):
            overflow = True
        else:
            value = value * 10 + digit
    if overflow:
        return 0, _INT_TOO_LARGE
    return (-value if negative else value), _INT_OK


@numba.njit(cache=True, nogil=True)
def _next_tab(buf, pos, end):
    while pos < end and buf[pos] != _TAB:
        pos += 1
    return pos


@numba.njit(cache=True, nogil=True)
def _parse_line(buf, pos, end):
    """Parse chrom, start and end of the data line buf[pos:end]; returns (error, chrom_end, start, stop)."""
    t1 = pos
    chrom_error = _OK
    while t1 < end and buf[t1] != _TAB:
        if buf[t1] <= _SPACE and chrom_error != _SPACE_IN_CHROM:
            chrom_error = _SPACE_IN_CHROM if buf[t1] == _SPACE else _CONTROL_IN_CHROM
        t1 += 1
    if t1 == end:
        return _TOO_FEW_COLUMNS, t1, 0, 0
    if t1 == pos:
        return _EMPTY_CHROM, t1, 0, 0
    if chrom_error != _OK:
        return chrom_error, t1, 0, 0
    t2 = _next_tab(buf, t1 + 1, end)
    if t2 == end:
        return _TOO_FEW_COLUMNS, t1, 0, 0
    start, outcome = _parse_int(buf, t1 + 1, t2)
    if outcome != _INT_OK:
        return (_START_TOO_LARGE if outcome == _INT_TOO_LARGE else _BAD_START), t1, 0, 0
    if start < 0:
        return _NEGATIVE_START, t1, start, 0
    stop, outcome = _parse_int(buf, t2 + 1, _next_tab(buf, t2 + 1, end))
    if outcome != _INT_OK:
        return (_END_TOO_LARGE if outcome == _INT_TOO_LARGE else _BAD_END), t1, start, 0
    if stop < 0:
        return _NEGATIVE_END, t1, start, stop
    if stop < start:
        return _END_BEFORE_START, t1, start, stop
    return _OK, t1, start, stop


@numba.njit(cache=True, nogil=True)
def _same_bytes(buf, a, b, n):
    for k in range(n):
        if buf[a + k] != buf[b + k]:
            return False
    return True


def encoded_names(chroms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Chromosome names as one byte array and the bounds of each name in it."""
    encoded = [c.encode() for c in chroms]
    bounds = np.concatenate([[0], np.cumsum([len(b) for b in encoded])]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), bounds


@numba.njit(cache=True, nogil=True)
def n_digits(value):
    """Number of decimal digits of ``value`` (≥ 0)."""
    n = 1
    while value >= 10:
        value //= 10
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def write_int(out, pos, value):
    """Write the decimal digits of ``value`` (≥ 0) at ``pos``; returns the position after them."""
    width = n_digits(value)
    for k in range(width - 1, -1, -1):
        out[pos + k] = _ZERO + value % 10
        value //= 10
    return pos + width


@numba.njit(cache=True, nogil=True)
def _digits(buf, pos, n):
    """The value of the plain digits at ``pos`` and where they stop (at most 18 digits, else ``(-1, pos)``)."""
    value = 0
    k = pos
    while k < n and _ZERO <= buf[k] <= _NINE:
        value = value * 10 + (buf[k] - _ZERO)
        k += 1
    if k == pos or k - pos > _SAFE_DIGITS:
        return -1, pos
    return value, k


@numba.njit(cache=True, nogil=True)
def _fast_line(buf, pos, n):
    """The common line, read in one pass: ``chrom<TAB>digits<TAB>digits`` then a tab or the newline.

    Returns ``(chrom_end, start, stop, next_line)``, or ``chrom_end = -1`` when the line is anything else (a
    header, blank, odd spacing, a sign, a long number, an error): :func:`_parse_line` then judges it, so every
    check and message stays in one place.
    """
    c = buf[pos]
    if c == _HASH or c == _TRACK[0] or c == _BROWSER[0]:
        return -1, 0, 0, 0
    t1 = pos
    while t1 < n and buf[t1] > _SPACE:
        t1 += 1
    if t1 == pos or t1 >= n or buf[t1] != _TAB:
        return -1, 0, 0, 0
    start, k = _digits(buf, t1 + 1, n)
    if start < 0 or k >= n or buf[k] != _TAB:
        return -1, 0, 0, 0
    stop, k = _digits(buf, k + 1, n)
    if stop < start or (k < n and buf[k] != _TAB and buf[k] != _NL):
        return -1, 0, 0, 0
    while k < n and buf[k] != _NL:
        k += 1
    return t1, start, stop, k + 1


@numba.njit(cache=True, nogil=True)
def _parse_bed3(buf):
    """Parse the first three columns of every data line of a BED text.

    Returns starts, ends, run_rows, run_chrom_pos, run_chrom_end, n_rows, n_runs, error, error_line,
    error_pos, late_track_line. ``run_*`` describe runs of rows with byte-identical chromosome names. On an
    error, ``n_rows`` counts the intervals before the bad line. ``late_track_line`` is the first ``track``
    line after an interval (0 if none).
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
    late_track_line = 0
    pos = 0
    prev_pos = -1
    prev_end = -1
    while pos < n:
        line_no += 1
        t1, start, stop, next_pos = _fast_line(buf, pos, n)
        if t1 < 0:  # not the common line: the checked parser judges it
            eol = pos
            while eol < n and buf[eol] != _NL:
                eol += 1
            next_pos = eol + 1
            end = eol
            while end > pos and (buf[end - 1] == _CR or buf[end - 1] == _SPACE):
                end -= 1
            if end == pos or ((buf[pos] == _SPACE or buf[pos] == _TAB) and _is_blank(buf, pos, end)):
                pos = next_pos
                continue
            if _is_header(buf, pos, end):
                if late_track_line == 0 and n_rows > 0 and _starts_with_word(buf, pos, end, _TRACK):
                    late_track_line = line_no
                pos = next_pos
                continue
            error, t1, start, stop = _parse_line(buf, pos, end)
            if error != _OK:
                run_rows[n_runs] = n_rows
                return starts, ends, run_rows, run_chrom_pos, run_chrom_end, n_rows, n_runs, error, line_no, pos, 0
        if not (prev_pos >= 0 and t1 - pos == prev_end - prev_pos and _same_bytes(buf, pos, prev_pos, t1 - pos)):
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
    return starts, ends, run_rows, run_chrom_pos, run_chrom_end, n_rows, n_runs, _OK, 0, 0, late_track_line


_INFLATE_CHUNK = 1 << 22  # bytes of text inflated at a time
#: A gzip file inflating to more than this many times its size is refused: the most redundant real BED files (tiles of
#: a genome) inflate 5 times, a stream of zeros or of one repeated line about 1000 times (gzip's ceiling is 1032).
_MAX_INFLATION = 100
#: ...once its text is over this size: a small file may be as redundant as it likes.
_INFLATION_FLOOR = 32 << 20

# What other files begin with: (magic bytes, what the file is, how to make a gzipped BED file of it).
_COMPRESSED = (
    (b"\xfd7zXZ\x00", "xz", "xzcat FILE | gzip > FILE.gz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstdcat FILE | gzip > FILE.gz"),
    (b"PK\x03\x04", "zip", "unzip -p FILE | gzip > FILE.gz"),
    (b"PK\x05\x06", "zip (an empty archive)", "unzip -p FILE | gzip > FILE.gz"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip", "7z x -so FILE | gzip > FILE.gz"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4cat FILE | gzip > FILE.gz"),
)
_BIGBED = "a bigBed file (binary), not BED text; convert it with UCSC's bigBedToBed"
_UTF16 = "UTF-16 text, not UTF-8; convert it (`iconv -f UTF-16 -t UTF-8 FILE > FILE.bed`)"
_NOT_BED = (
    (b"\xeb\xf2\x89\x87", _BIGBED),
    (b"\x87\x89\xf2\xeb", _BIGBED),
    (b"BAM\x01", "a BAM file (aligned reads), not BED text; call peaks, or convert with `bedtools bamtobed`"),
    (b"CRAM\x02", "a CRAM file (aligned reads), not BED text"),
    (b"CRAM\x03", "a CRAM file (aligned reads), not BED text"),
    (b"\x89HDF", "an HDF5 file, not BED text"),
    (b"\xff\xfe", _UTF16),
    (b"\xfe\xff", _UTF16),
)
_MARKUP = (b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")
_UTF8_BOM = b"\xef\xbb\xbf"


def _compression_of(data: bytes) -> tuple[str, str] | None:
    """The name of a compression other than gzip that ``data`` starts with, and how to recompress it."""
    # BZh, a block size digit, then a block or end-of-stream signature: no BED line looks like this
    if data[:3] == b"BZh" and data[3:4] in b"123456789" and data[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bzip2", "bzcat FILE | gzip > FILE.gz"
    for magic, name, how in _COMPRESSED:
        if data.startswith(magic):
            return name, how
    return None


def _check_compression(data: bytes, source: str, *, inside_gzip: bool) -> None:
    """Refuse files compressed with anything but (one layer of) gzip, saying how to recompress them."""
    if inside_gzip and data[:2] == b"\x1f\x8b":
        raise ValueError(f"{source}: gzipped twice; decompress it once (`gunzip -c FILE > FILE.once.gz`)")
    found = _compression_of(data)
    if found is not None:
        where = "inside its gzip layer, " if inside_gzip else ""
        raise ValueError(
            f"{source}: {where}compressed with {found[0]}, which bedspace does not read; decompress it and "
            f"recompress with gzip (`{found[1]}`)"
        )


def _check_text(data: bytes, source: str, *, inside_gzip: bool = False) -> None:
    """Refuse content that is not BED text at all (binary formats, web pages, UTF-16, NUL bytes)."""
    for magic, what in _NOT_BED:
        if data.startswith(magic):
            raise ValueError(f"{source}: {what}")
    if data[257:262] == b"ustar":
        raise ValueError(f"{source}: a tar archive, not BED text; extract the BED files from it (`tar -xf FILE`)")
    if data[:256].lstrip().lower().startswith(_MARKUP):
        first = data.lstrip().split(b"\n", 1)[0][:60].decode("utf-8", "replace")
        raise ValueError(
            f"{source}, line 1: an HTML/XML page, not BED text (it starts {first!r}); a download that returned "
            "an error or login page instead of the file?"
        )
    nul = data.find(b"\x00")
    if nul < 0:
        return
    head = data[:200]
    if head.count(0) == len(head):  # zeros on both byte lanes: not UTF-16, not text at all
        raise ValueError(
            f"{source}: {'decompresses to' if inside_gzip else 'starts with'} NUL bytes (binary zeros), not text: "
            "not a BED file (zero-filled, corrupt, or never finished writing?)"
        )
    if len(head) >= 4 and (head[0::2].count(0) == len(head[0::2]) or head[1::2].count(0) == len(head[1::2])):
        raise ValueError(f"{source}: {_UTF16}")
    raise ValueError(
        f"{source}, line {_line_of(data, nul)}: a NUL byte (offset {nul}); the file is binary, or was cut short "
        "or zero-filled by a crash"
    )


def _read_bytes(path: Path) -> bytes | bytearray:
    with open(path, "rb") as handle:
        magic = handle.read(2)
        if magic == b"\x1f\x8b":
            return _inflate(handle, path.stat().st_size, str(path))
        handle.seek(0)
        data = handle.read()
    _check_compression(data, str(path), inside_gzip=False)
    return data


def _inflate(handle, size: int, source: str) -> bytearray:
    """The text of a gzip file, inflated a chunk at a time; what cannot be BED text is refused at its first chunk.

    Memory stays bounded for a gzip bomb: NUL bytes stop the reading where they appear (no BED text holds one), and
    so does text growing past :data:`_MAX_INFLATION` times the file (real BED files inflate 3-6 times; a stream of
    zeros or of one repeated line ~1000 times) once it is over :data:`_INFLATION_FLOOR`.
    """
    handle.seek(0)
    limit = max(_INFLATION_FLOOR, _MAX_INFLATION * size)
    data = bytearray()
    try:
        # ISA-L's inflate (same output as zlib's, several times faster): reading is half of tokenizing
        with igzip.IGzipFile(fileobj=handle, mode="rb") as stream:
            while chunk := stream.read(_INFLATE_CHUNK):
                if not data:
                    _check_compression(chunk, source, inside_gzip=True)
                data += chunk
                if b"\x00" in chunk:
                    _check_text(data, source, inside_gzip=True)
                if len(data) > limit:
                    raise ValueError(_inflation_message(source, size, len(data)))
    except (OSError, EOFError, zlib.error, isal_zlib.error) as err:
        raise ValueError(
            f"{source}: not a readable gzip file ({err}); it is probably truncated (an unfinished download "
            "or copy) or corrupt"
        ) from None
    return data


def _inflation_message(source: str, size: int, inflated: int) -> str:
    return (
        f"{source}: a gzip bomb or a generated file, not read: its {size:,} bytes inflate to over {inflated:,} bytes "
        f"(more than {inflated // max(size, 1):,} times; BED text inflates 3-6 times). If it is BED, decompress it "
        "(`gunzip -k FILE`) and give the plain file"
    )


def _field(line: bytes, column: int) -> str:
    fields = line.split(b"\t")
    return fields[column - 1].decode("utf-8", "replace") if len(fields) >= column else ""


def _integer_hint(value: str, n_rows: int) -> str:
    """Why a coordinate did not read as an integer: a sign, a hex number, a decimal, a header line."""
    if value.startswith("+"):
        return "; coordinates are written without a '+' sign"
    if value[:3].lower().startswith(("0x", "-0x")):
        return "; coordinates are decimal, not hexadecimal"
    try:
        float(value)
    except ValueError:
        pass
    else:
        return "; coordinates are whole numbers, written without a decimal point or exponent"
    # a header's column name is short: a 50 MB value is not walked character by character
    if len(value) <= 80 and any(c.isalpha() for c in value) and not any(c.isdigit() for c in value):
        where = "" if n_rows == 0 else " in the middle of the file (were files concatenated?)"
        return f"; is this a header line{where}? A header line must start with '#' or 'track'"
    return ""


def _describe_error(error: int, line: bytes, n_rows: int) -> str:
    chrom, start, end = _field(line, 1), _field(line, 2), _field(line, 3)
    if error == _TOO_FEW_COLUMNS:
        hint = ""
        if b"\t" not in line and len(line.split()) >= 3:
            hint = "; the columns are separated by spaces, but BED columns are separated by tabs"
        return f"fewer than 3 tab-separated columns (chrom, start, end){hint}"
    if error == _EMPTY_CHROM:
        return "chromosome (column 1) is empty"
    if error == _SPACE_IN_CHROM:
        return (
            f"chromosome (column 1) {excerpt(chrom)} contains a space; chromosome names have no spaces and BED "
            "columns are separated by tabs"
        )
    if error == _CONTROL_IN_CHROM:
        return f"chromosome (column 1) {excerpt(chrom)} contains a control character"
    if error == _BAD_START:
        return f"start (column 2) is not a non-negative integer: {excerpt(start)}{_integer_hint(start, n_rows)}"
    if error == _BAD_END:
        return f"end (column 3) is not an integer: {excerpt(end)}{_integer_hint(end, n_rows)}"
    if error in (_START_TOO_LARGE, _END_TOO_LARGE):
        name, value = ("start (column 2)", start) if error == _START_TOO_LARGE else ("end (column 3)", end)
        return f"{name} is too large: {excerpt(value, quote=False)} does not fit in a 64-bit integer (at most {_INT64_MAX})"
    # numbers that parsed may still be long: leading zeros
    start, end = excerpt(start, quote=False), excerpt(end, quote=False)
    if error == _NEGATIVE_START:
        return f"start (column 2) is negative: {start}"
    if error == _NEGATIVE_END:
        return f"end (column 3) is negative: {end}"
    return f"end (column 3) is smaller than start (column 2): {end} < {start}"


def _error_message(data: bytes, source: str, error: int, line_no: int, line_pos: int, n_rows: int) -> str:
    line_end = data.find(b"\n", line_pos)
    line = data[line_pos : line_end if line_end >= 0 else len(data)].rstrip(b"\r ")
    message = _describe_error(error, line, n_rows)
    if b"\r" in line:
        message += "; the line holds a carriage return: are lines ended by CR alone (old Mac style)? Use \\n"
    return f"{source}, line {line_no}: {message} (the line: {excerpt(line.decode('utf-8', 'replace'))})"


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode_chromosomes(data: bytes, chrom_pos: np.ndarray, chrom_end: np.ndarray, n_runs: int, source: str):
    names = []
    for i in range(n_runs):
        raw = data[chrom_pos[i] : chrom_end[i]]
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{source}, line {_line_of(data, chrom_pos[i])}: chromosome (column 1) {excerpt(raw)} is not UTF-8 "
                "text; save the file as UTF-8"
            ) from None
        if "\ufeff" in name:
            raise ValueError(
                f"{source}, line {_line_of(data, chrom_pos[i])}: chromosome (column 1) {excerpt(name)} holds a "
                "byte-order mark in the middle of the file; were files with byte-order marks concatenated? Remove "
                "the marks"
            )
        names.append(name)
    return names


def parse_bed_bytes(data: bytes, *, source: str) -> Intervals:
    """Parse BED text (already decompressed); errors name ``source`` and the line number.

    A UTF-8 byte-order mark at the start is skipped; binary content, web pages and UTF-16 are refused.

    Warns
    -----
    BEDSpaceWarning
        A ``track`` line after the first interval: UCSC reads such a file as several tracks, bedspace as one
        region set.
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    _check_text(data, source)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends, run_rows, chrom_pos, chrom_end, n_rows, n_runs, error, error_line, error_pos, late_track = (
        _parse_bed3(buf)
    )
    if error != _OK:
        raise ValueError(_error_message(data, source, error, error_line, error_pos, n_rows))
    if late_track:
        warn(
            f"{source}, line {late_track}: a 'track' line after intervals; UCSC reads this file as several tracks, "
            "bedspace reads all its intervals as one region set"
        )
    run_chroms = _decode_chromosomes(data, chrom_pos, chrom_end, n_runs, source)
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
    ``track``, ``browser`` and ``#`` lines and blank (or whitespace-only) lines are skipped, as are a UTF-8
    byte-order mark and Windows line endings. Only the interval columns are kept. Coordinates may be any
    non-negative integer that fits in 64 bits.

    Parameters
    ----------
    path
        Path to a ``.bed``, ``.bed.gz``, ``.narrowPeak(.gz)`` or ``.broadPeak(.gz)`` file. Gzip (also bgzip) is
        recognised by content, not by name; other compressions are refused with how to recompress the file.

    Returns
    -------
    PyRanges with columns ``Chromosome`` (categorical, names kept exactly as written), ``Start`` and ``End``
    (int64, 0-based, half-open), in file order.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        A malformed line: fewer than 3 tab-separated columns, a chromosome name with a space or a control
        character or that is not UTF-8, a coordinate that is not a decimal integer or does not fit in 64 bits, a
        negative coordinate or an end before its start. The message names the file, the line number, the column
        and the value (a long value is quoted by its first 80 characters and its length). Also a file that is
        not BED text: compressed with something other than gzip, a binary format (bigBed, BAM, tar), a saved HTML
        page, UTF-16 text, NUL bytes (in a gzip file, found as it inflates: reading stops there), or a gzip file
        inflating to over 100 times its size past 32 MB of text (a gzip bomb; BED text inflates 3-6 times).

    Warns
    -----
    BEDSpaceWarning
        The file holds no intervals (an empty region set is returned), or a ``track`` line follows intervals
        (UCSC would read several tracks; all intervals are read as one region set).
    """
    intervals = read_intervals(path)
    if len(intervals) == 0:
        warn(f"{path}: no intervals in this file; it is an empty region set")
    # pyranges1 is imported on use: a second of import time that most callers do not need
    return pyranges().PyRanges(intervals.to_frame())


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
    text = format_bed3(ranges)
    path = Path(path)
    atomic_write_bytes(gzip.compress(text, compresslevel=6, mtime=0) if path.name.endswith(".gz") else text, path)
    return path


def format_bed3(ranges: pd.DataFrame) -> bytes:
    """The BED3 text (``chrom<TAB>start<TAB>end`` lines) that :func:`write_bed` writes, uncompressed."""
    columns = _locate_columns(ranges, source="intervals")
    return ranges[list(columns)].to_csv(sep="\t", header=False, index=False).encode()
