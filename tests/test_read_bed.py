from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyranges1 as pr
import pytest

import bedspace as bs


def test_real_files_match_metadata_counts(hg19, hg19_metadata):
    for name, expected in hg19_metadata.set_index("file_name")["n_regions"].iloc[::17].items():
        ranges = bs.io.read_bed(hg19.beds / name)
        assert isinstance(ranges, pr.PyRanges)
        assert len(ranges) == expected
        assert ranges["Start"].dtype == np.int64
        assert (ranges["End"] > ranges["Start"]).all()


def test_gz_and_plain_agree_and_chromosomes_kept(hg19, tmp_path):
    source = hg19.files[0]
    plain = tmp_path / "plain.bed"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    a, b = bs.io.read_bed(source), bs.io.read_bed(plain)
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    assert set(a["Chromosome"].astype(str)) <= {f"chr{i}" for i in [*range(1, 23), "X", "Y"]}


def test_narrowpeak_with_headers(tmp_path):
    path = tmp_path / "peaks.narrowPeak"
    path.write_text(
        "browser position chr1:1-1000\n"
        'track type=narrowPeak name="x"\n'
        "# a comment\n"
        "\n"
        "chr1\t100\t200\tpeak1\t0\t.\t5.0\t3.0\t2.0\t50\n"
        "1\t300\t400\tpeak2\t0\t.\t5.0\t3.0\t2.0\t50\r\n"
        "chrUn_gl000220\t5\t5\tpeak3\t0\t.\t5.0\t3.0\t2.0\t50\n"
    )
    ranges = bs.io.read_bed(path)
    assert ranges["Chromosome"].astype(str).tolist() == ["chr1", "1", "chrUn_gl000220"]
    assert ranges["Start"].tolist() == [100, 300, 5]
    assert ranges["End"].tolist() == [200, 400, 5]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("chr1\t100", "fewer than 3"),
        ("chr1 100 200", "fewer than 3"),
        ("chr1\tabc\t200", "start (column 2) is not"),
        ("chr1\t100\t2e5", "end (column 3) is not an integer"),
        ("chr1\t100\t", "end (column 3) is not an integer"),
        ("chr1\t-5\t200", "negative"),
        ("chr1\t300\t200", "smaller than start"),
        ("\t100\t200", "chromosome (column 1) is empty"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.bed.gz"
    path.write_bytes(gzip.compress(("track name=x\nchr1\t1\t2\nchr1\t3\t4\n" + line + "\nchr1\t5\t6\n").encode()))
    with pytest.raises(ValueError, match=r"bad\.bed\.gz, line 4: ") as info:
        bs.io.read_bed(path)
    assert message in str(info.value)


def test_malformed_real_file(hg19, tmp_path):
    lines = gzip.decompress(hg19.files[3].read_bytes()).decode().splitlines()
    lines[999] = lines[999].replace("\t", "\tx", 1)
    path = tmp_path / "corrupt.bed"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"corrupt\.bed, line 1000: start"):
        bs.io.read_bed(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.bed"):
        bs.io.read_bed(tmp_path / "nowhere.bed")


def test_empty_file_is_empty_set(tmp_path):
    path = tmp_path / "empty.bed"
    path.write_text("track name=empty\n")
    with pytest.warns(bs.BEDSpaceWarning, match="no intervals"):
        ranges = bs.io.read_bed(path)
    assert len(ranges) == 0


def test_not_gzip_but_named_gz_is_read_by_content(tmp_path):
    path = tmp_path / "x.bed.gz"
    path.write_text("chr1\t1\t2\n")
    assert len(bs.io.read_bed(path)) == 1


def test_truncated_gzip(tmp_path, hg19):
    path = tmp_path / "cut.bed.gz"
    path.write_bytes(hg19.files[0].read_bytes()[:5000])
    with pytest.raises(ValueError, match="cut.bed.gz: not a readable gzip"):
        bs.io.read_bed(path)
