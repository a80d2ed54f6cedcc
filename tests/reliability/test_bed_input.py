"""BED input that is malformed or merely odd: every case reads correctly, warns, or fails naming file and line."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tarfile
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._formats.bed import Intervals, read_bed, read_intervals

INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def beaf() -> bytes:
    """A real dm3 set (BEAF-32 in Kc cells), decompressed; its first chromosome is chr2L."""
    path = resources.files("bedspace.datasets") / "insulators" / "BEAF_Kc_Bushey_2009.bed.gz"
    return gzip.decompress(path.read_bytes())


def frame_of(path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(read_bed(path))
    frame["Chromosome"] = frame["Chromosome"].astype(str)
    return frame


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def raises_at(path: Path, line: int | None, fragment: str, error=ValueError):
    """Read ``path``; the error must name the file (and the line) and contain ``fragment``."""
    where = re.escape(str(path)) + (f", line {line}: " if line is not None else ": ")
    with pytest.raises(error, match=where) as info:
        read_bed(path)
    assert fragment in str(info.value), str(info.value)
    return str(info.value)


# --- a byte-order mark ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_utf8_bom_is_skipped(tmp_path, beaf, compress):
    data = b"\xef\xbb\xbf" + beaf
    with_bom = write(tmp_path, "bom.bed", gzip.compress(data) if compress else data)
    without = write(tmp_path, "plain.bed", beaf)
    got = frame_of(with_bom)
    assert got["Chromosome"].iloc[0] == "chr2L"
    assert len(got) == 2995
    pd.testing.assert_frame_equal(got, frame_of(without))
    intervals = read_intervals(with_bom)
    assert intervals.run_chroms[0] == "chr2L"
    assert (intervals.starts[0], intervals.ends[0]) == (65716, 65959)


def test_utf8_bom_before_a_header_is_skipped(tmp_path):
    path = write(tmp_path, "x.bed", b"\xef\xbb\xbftrack name=x\nchr1\t5\t9\n")
    assert frame_of(path).values.tolist() == [["chr1", 5, 9]]


def test_utf8_bom_in_the_middle_is_refused(tmp_path, beaf):
    # `cat a.bed b.bed` where b.bed was saved with a byte-order mark
    path = write(tmp_path, "cat.bed", beaf + b"\xef\xbb\xbfchr2L\t1\t2\n")
    raises_at(path, 2996, "byte-order mark in the middle")


# --- 64-bit coordinates -----------------------------------------------------------------------------------------


def test_every_int64_coordinate_is_read(tmp_path):
    path = write(
        tmp_path,
        "big.bed",
        f"chr1\t1000000000000000000\t1000000000000000001\nchr1\t0\t{INT64_MAX}\nchr1\t000100\t0000200\n".encode(),
    )
    frame = frame_of(path)
    assert frame["Start"].tolist() == [10**18, 0, 100]
    assert frame["End"].tolist() == [10**18 + 1, INT64_MAX, 200]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (f"chr1\t{INT64_MAX + 1}\t{INT64_MAX}", f"start (column 2) is too large: {INT64_MAX + 1} does not fit"),
        ("chr1\t0\t" + "9" * 30, "end (column 3) is too large: " + "9" * 30),
        ("chr1\t0\t-" + "9" * 30, "end (column 3) is too large"),
    ],
)
def test_beyond_int64_is_too_large(tmp_path, line, fragment):
    path = write(tmp_path, "huge.bed", f"chr1\t1\t2\n{line}\n".encode())
    raises_at(path, 2, fragment)


def test_digits_then_junk_is_not_an_integer_rather_than_too_large(tmp_path):
    path = write(tmp_path, "x.bed", ("chr1\t1\t" + "9" * 25 + "x\n").encode())
    message = raises_at(path, 1, "end (column 3) is not an integer")
    assert "too large" not in message


def test_frames_with_coordinates_beyond_int64_are_refused():
    for ends in (np.array([1e19]), np.array([2.0**63]), np.array([2**63], dtype=np.uint64)):
        frame = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": ends})
        with pytest.raises(ValueError, match=r"^my set, row 0: end is too large: .* does not fit in a 64-bit integer"):
            Intervals.from_frame(frame, source="my set")
    frame = pd.DataFrame({"chrom": ["chr1"], "start": np.array([5], np.uint64), "end": [2.0**62]})
    assert Intervals.from_frame(frame, source="ok").ends.tolist() == [2**62]


# --- malformed lines: the message names the file, the line and what is wrong ---------------------------------------


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        pytest.param(b"chr1 100 200", "separated by spaces, but BED columns are separated by tabs", id="spaces"),
        pytest.param(b"chr1 100\t200\t300", "'chr1 100' contains a space", id="space-then-tabs"),
        pytest.param(b"chr 1\t100\t200", "chromosome (column 1) 'chr 1' contains a space", id="chrom-with-space"),
        pytest.param(b" chr1\t100\t200", "' chr1' contains a space", id="leading-space"),
        pytest.param(b"chr\x0b1\t100\t200", "contains a control character", id="control-char"),
        pytest.param(b"chr\xe91\t100\t200", "chromosome (column 1) b'chr\\xe91' is not UTF-8 text", id="latin-1"),
        pytest.param(b"chr1\t100\t-5", "end (column 3) is negative: -5", id="negative-end"),
        pytest.param(b"chr1\t-100\t-5", "start (column 2) is negative: -100", id="negative-both"),
        pytest.param(b"chr1\t+100\t200", "'+100'; coordinates are written without a '+' sign", id="plus-sign"),
        pytest.param(b"chr1\t100\t200.0", "'200.0'; coordinates are whole numbers", id="float"),
        pytest.param(b"chr1\t1e2\t200", "'1e2'; coordinates are whole numbers", id="exponent"),
        pytest.param(b"chr1\t0x64\t200", "'0x64'; coordinates are decimal, not hexadecimal", id="hex"),
        pytest.param(b"chr1\t\t200", "start (column 2) is not a non-negative integer: ''", id="empty-start"),
        pytest.param(b"chr1\t1_000\t2000", "start (column 2) is not a non-negative integer: '1_000'", id="underscore"),
        pytest.param(b"chr1\t100", "fewer than 3 tab-separated columns", id="cut-short"),
        pytest.param(b"chr1\t300\t200", "end (column 3) is smaller than start (column 2): 200 < 300", id="reversed"),
        pytest.param(
            b"chrom\tstart\tend", "is this a header line in the middle of the file (were files concatenated?)", id="hdr"
        ),
    ],
)
def test_bad_line_names_file_line_and_value(tmp_path, line, fragment):
    path = write(tmp_path, "odd.bed", b"# header\nchr1\t1\t2\n" + line + b"\nchr1\t5\t6\n")
    raises_at(path, 3, fragment)


def test_header_without_hash_says_how_to_mark_it(tmp_path):
    path = write(tmp_path, "hdr.bed.gz", gzip.compress(b"chrom\tstart\tend\nchr1\t1\t2\n"))
    raises_at(
        path,
        1,
        "start (column 2) is not a non-negative integer: 'start'; is this a header line? A header line must start with '#' or 'track'",
    )


def test_nul_byte_is_refused(tmp_path, beaf):
    lines = beaf.split(b"\n")
    lines[41] = lines[41].replace(b"\t", b"\x00\t", 1)
    path = write(tmp_path, "nul.bed", b"\n".join(lines))
    raises_at(path, 42, "a NUL byte")


def test_zero_filled_tail_after_a_crash_is_refused(tmp_path, beaf):
    path = write(tmp_path, "crashed.bed", beaf + b"\x00" * 4096)
    raises_at(path, 2996, "zero-filled by a crash")


def test_old_mac_line_endings_are_explained(tmp_path):
    path = write(tmp_path, "mac.bed", b"chr1\t1\t2\rchr1\t3\t4\r")
    raises_at(path, 1, "lines ended by CR alone")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("chr1\t1\t2\n".encode("utf-16"), id="utf16-bom"),
        pytest.param("chr1\t1\t2\n".encode("utf-16-le"), id="utf16-le"),
        pytest.param("chr1\t1\t2\n".encode("utf-16-be"), id="utf16-be"),
    ],
)
def test_utf16_is_refused(tmp_path, data):
    raises_at(write(tmp_path, "wide.bed", data), None, "UTF-16 text, not UTF-8")


def test_html_error_page_is_refused(tmp_path):
    page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
    message = raises_at(write(tmp_path, "peaks.bed", page), 1, "an HTML/XML page, not BED text")
    assert "<!DOCTYPE html>" in message
    raises_at(write(tmp_path, "peaks2.bed.gz", gzip.compress(b"\n  <html>\n")), 1, "an HTML/XML page")


# --- compression and other file kinds ---------------------------------------------------------------------------


def zip_of(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("peaks.bed", data)
    return out.getvalue()


def tar_gz_of(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("peaks.bed")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    ("pack", "fragment"),
    [
        pytest.param(bz2.compress, "compressed with bzip2, which bedspace does not read", id="bz2"),
        pytest.param(lzma.compress, "compressed with xz, which bedspace does not read", id="xz"),
        pytest.param(zip_of, "compressed with zip, which bedspace does not read", id="zip"),
        pytest.param(lambda d: b"\x28\xb5\x2f\xfd" + d, "compressed with zstd", id="zstd"),
        pytest.param(
            lambda d: gzip.compress(bz2.compress(d)), "inside its gzip layer, compressed with bzip2", id="gz-bz2"
        ),
        pytest.param(lambda d: gzip.compress(gzip.compress(d)), "gzipped twice", id="gz-gz"),
        pytest.param(tar_gz_of, "a tar archive, not BED text", id="tar-gz"),
        pytest.param(lambda d: b"\xeb\xf2\x89\x87" + d, "a bigBed file", id="bigbed"),
        pytest.param(lambda d: gzip.compress(b"BAM\x01" + d), "a BAM file", id="bam"),
    ],
)
def test_other_formats_are_named(tmp_path, beaf, pack, fragment):
    message = raises_at(write(tmp_path, "peaks.bed.gz", pack(beaf)), None, fragment)
    if "compressed with" in fragment:
        assert "recompress with gzip" in message


def test_a_chromosome_starting_like_bzip2_is_still_bed(tmp_path):
    assert frame_of(write(tmp_path, "x.bed", b"BZh91AY\t1\t2\n")).values.tolist() == [["BZh91AY", 1, 2]]


def test_truncated_gzip_says_it_is_cut_short(tmp_path, beaf):
    path = write(tmp_path, "cut.bed.gz", gzip.compress(beaf)[:-100])
    raises_at(path, None, "probably truncated")


@pytest.mark.parametrize("where", ["body", "checksum"])
def test_corrupt_gzip_names_the_file(tmp_path, beaf, where):
    data = bytearray(gzip.compress(beaf))
    if where == "body":  # a damaged deflate block: zlib and ISA-L raise their own error types, not OSError
        data[20:40] = bytes(b ^ 0x5A for b in data[20:40])
    else:
        data[-6] ^= 0xFF
    raises_at(write(tmp_path, "damaged.bed.gz", bytes(data)), None, "not a readable gzip file")


def test_a_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "sets.bed"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=re.escape(str(folder))):
        read_bed(folder)


# --- odd but valid input reads correctly ---------------------------------------------------------------------------


def test_windows_line_endings_read_like_unix(tmp_path, beaf):
    crlf = write(tmp_path, "crlf.bed", beaf.replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(frame_of(crlf), frame_of(write(tmp_path, "lf.bed", beaf)))


def test_bgzip_style_multi_member_gzip_is_read_whole(tmp_path, beaf):
    cut = beaf.index(b"\n", len(beaf) // 2) + 1
    path = write(tmp_path, "multi.bed.gz", gzip.compress(beaf[:cut]) + gzip.compress(beaf[cut:]))
    assert len(frame_of(path)) == 2995


def test_whitespace_only_lines_are_blank(tmp_path):
    path = write(tmp_path, "x.bed", b"chr1\t1\t2\n   \n\t\t\n \t \r\n\r\nchr1\t3\t4")
    assert frame_of(path).values.tolist() == [["chr1", 1, 2], ["chr1", 3, 4]]


def test_empty_interval_and_extra_columns_with_spaces(tmp_path):
    path = write(tmp_path, "x.bed", b"chr1\t5\t5\tmy peak\t0\t+\nchr1\t0\t0\n")
    assert frame_of(path).values.tolist() == [["chr1", 5, 5], ["chr1", 0, 0]]


def test_track_line_after_intervals_warns_and_reads_all(tmp_path):
    path = write(tmp_path, "tracks.bed", b"track name=a\nchr1\t1\t2\ntrack name=b\nchr2\t3\t4\n")
    with pytest.warns(bs.BEDSpaceWarning, match=re.escape(str(path)) + ", line 3: a 'track' line after intervals"):
        frame = frame_of(path)
    assert frame.values.tolist() == [["chr1", 1, 2], ["chr2", 3, 4]]


@pytest.mark.parametrize(
    "data", [pytest.param(gzip.compress(b""), id="empty-gzip"), pytest.param(b"", id="empty-file")]
)
def test_empty_inputs_warn_and_are_empty(tmp_path, data):
    path = write(tmp_path, "empty.bed.gz", data)
    with pytest.warns(bs.BEDSpaceWarning, match=re.escape(str(path)) + ": no intervals"):
        assert len(read_bed(path)) == 0
