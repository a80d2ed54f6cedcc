"""The hg19 download is checksummed: a tampered original, conversion or chromosome-size file is refused and not kept."""

from __future__ import annotations

import gzip
import hashlib
import os
import re

import pandas as pd
import pytest

import bedspace as bs
from bedspace.datasets import _encode
from bedspace.datasets._files import ChecksumMismatchError

SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_registry_matches_the_collection(hg19, hg19_metadata):
    """Every bundled BED3 digest is that of the collection's file; every set has both digests."""
    expected = _encode._checksums()
    assert expected.index.tolist() == _encode._manifest()["file_name"].tolist() == hg19_metadata["file_name"].tolist()
    assert expected["source_sha256"].map(SHA256.fullmatch).all()
    assert expected["source_sha256"].is_unique
    for name, digest in expected["bed3_sha256"].items():
        assert sha256(gzip.decompress((hg19.beds / name).read_bytes())) == digest, name
    assert sha256(hg19.chrom_sizes.read_bytes()) == _encode.CHROM_SIZES_SHA256


def test_conversion_keeps_one_interval_per_chrom_and_start(tmp_path):
    # as `sort -k1,1 -k2,2n -u` made the collection: the smallest end of each (chrom, start), other sequences dropped
    original = tmp_path / "peaks.narrowPeak.gz"
    lines = [
        "chr2\t500\t900\tp1\t0\t.\t1\t1\t1\t50",
        "chr10\t5\t60\tp2\t0\t.\t1\t1\t1\t50",
        "chr2\t500\t700\tp3\t0\t.\t1\t1\t1\t50",
        "chrM\t1\t100\tp4\t0\t.\t1\t1\t1\t50",
        "chr2\t500\t700\tp5\t0\t.\t1\t1\t1\t80",
        "chr1_gl000191_random\t1\t9\tp6\t0\t.\t1\t1\t1\t5",
        "chr10\t5\t60\tp7\t0\t.\t1\t1\t1\t20",
        "chr2\t400\t900\tp8\t0\t.\t1\t1\t1\t50",
    ]
    original.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert _encode._to_bed3(original) == b"chr10\t5\t60\nchr2\t400\t900\nchr2\t500\t700\n"


# --- the download, from a local mirror -------------------------------------------------------------------------------


@pytest.fixture
def mirror(hg19, tmp_path, monkeypatch):
    """A file:// mirror of the originals of the five smallest sets (narrowPeak, unsorted, with chrM, as they are).

    The originals are made here, so the expected source digests are theirs; the BED3 digests are the bundled ones.
    """
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BEDSPACE_DATA_DIR", raising=False)
    subset = _encode._manifest().nsmallest(5, "n_regions").reset_index(drop=True)  # the consensus needs 5
    monkeypatch.setattr(_encode, "_manifest", lambda: subset)
    folder = tmp_path / "mirror"
    folder.mkdir()
    for row in subset.itertuples():
        text = gzip.decompress((hg19.beds / row.file_name).read_bytes()).decode()
        lines = [f"{line}\tpeak\t0\t.\t1.0\t1.0\t1.0\t50" for line in text.splitlines()][::-1]
        lines.insert(3, "chrM\t100\t200\tpeak\t0\t.\t1.0\t1.0\t1.0\t50")
        (folder / os.path.basename(row.source_path)).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    expected = _encode._checksums().loc[subset["file_name"]].copy()
    expected["source_sha256"] = [sha256((folder / os.path.basename(p)).read_bytes()) for p in subset["source_path"]]
    monkeypatch.setattr(_encode, "_checksums", lambda: expected)
    (folder / "hg19.chrom.sizes").write_text("chrM\t16571\nchr6_apd_hap1\t4622290\n" + hg19.chrom_sizes.read_text())
    monkeypatch.setattr(_encode, "SOURCE_URL", f"file://{folder}/{{name}}")
    monkeypatch.setattr(_encode, "CHROM_SIZES_URL", f"file://{folder}/hg19.chrom.sizes")
    return folder, subset, expected


def original_of(folder, subset, i):
    return folder / os.path.basename(subset["source_path"][i])


def cache_files(tmp_path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path / "cache")) for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_a_tampered_original_is_refused_and_not_kept(mirror, tmp_path):
    folder, subset, expected = mirror
    bad = original_of(folder, subset, 1)
    lines = gzip.decompress(bad.read_bytes()).decode().splitlines(keepends=True)
    chrom, start, rest = lines[5].split("\t", 2)
    lines[5] = f"{chrom}\t{int(start) + 1}\t{rest}"  # still a valid gzip of a valid narrowPeak: only a checksum tells
    data = gzip.compress("".join(lines).encode())
    bad.write_bytes(data)
    with pytest.raises(ChecksumMismatchError) as info:
        bs.datasets.encode_hg19()
    message = str(info.value)
    assert f"{bad.name} (downloaded from file://{bad})" in message
    assert f"sha256 is {sha256(data)}, expected {expected['source_sha256'].iloc[1]}" in message
    # the set before it is kept; the bad download, a BED of it and a completion marker are not
    assert cache_files(tmp_path) == [f"hg19_bedsets/beds/{subset['file_name'][0]}"]


def test_an_original_that_converts_to_other_intervals_is_refused(mirror, tmp_path, monkeypatch):
    folder, subset, expected = mirror
    changed = original_of(folder, subset, 0)
    lines = gzip.decompress(changed.read_bytes()).splitlines()
    changed.write_bytes(gzip.compress(b"\n".join(lines[1:]) + b"\n"))  # one interval fewer
    expected = expected.copy()
    expected.loc[subset["file_name"][0], "source_sha256"] = sha256(changed.read_bytes())
    monkeypatch.setattr(_encode, "_checksums", lambda: expected)
    with pytest.raises(
        ChecksumMismatchError, match=rf"^{re.escape(subset['file_name'][0])} \(converted to BED3"
    ) as info:
        bs.datasets.encode_hg19()
    assert f"expected {expected['bed3_sha256'].iloc[0]}" in str(info.value)
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        pytest.param(lambda t: t.replace("chr21\t48129895", "chr21\t48129896"), "sha256 is", id="changed-size"),
        pytest.param(lambda t: t.replace("chrY\t59373566\n", ""), r"lack \['chrY'\]", id="missing-chrY"),
        pytest.param(lambda t: "<!DOCTYPE html>\n<html>502 Bad Gateway</html>\n", "lack \\['chr1', ", id="html"),
    ],
)
def test_wrong_chromosome_sizes_are_refused(mirror, tmp_path, edit, error):
    folder, subset, _ = mirror
    sizes = folder / "hg19.chrom.sizes"
    assert "chr21\t48129895\n" in sizes.read_text()
    sizes.write_text(edit(sizes.read_text()))
    with pytest.raises(ValueError, match=error):
        bs.datasets.encode_hg19()
    universe = tmp_path / "cache" / "hg19_bedsets" / "universe"
    assert not universe.exists() or list(universe.iterdir()) == []
    assert not (tmp_path / "cache" / "hg19_bedsets" / ".complete").exists()


def test_a_copy_from_an_earlier_bedspace_is_checked_and_repaired(mirror, tmp_path, monkeypatch):
    """A cached set that differs (e.g. kept duplicate intervals) is fetched again; matching sets are not."""
    folder, subset, _ = mirror
    first = bs.datasets.encode_hg19()
    stale = first.beds / subset["file_name"][2]
    good = pd.DataFrame(bs.io.read_bed(stale))
    text = gzip.decompress(stale.read_bytes())
    stale.write_bytes(gzip.compress(text + text.splitlines(keepends=True)[-1]))  # a duplicate, as before
    (first.beds.parent / ".complete").write_bytes(b"")  # the marker an earlier bedspace wrote
    for i in (0, 1, 3, 4):  # the matching sets must not be fetched again
        original_of(folder, subset, i).unlink()
    again = bs.datasets.encode_hg19()
    pd.testing.assert_frame_equal(pd.DataFrame(bs.io.read_bed(again.beds / stale.name)), good)
    assert (again.beds.parent / ".complete").read_text() == _encode._checksums_digest()
    original_of(folder, subset, 2).unlink()  # a complete, verified copy is used without any download
    assert bs.datasets.encode_hg19().beds == again.beds
