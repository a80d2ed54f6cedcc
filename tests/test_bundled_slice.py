"""The bundled hg19 slice (chr21–22): what it holds, that it is the collection's own lines, that it extracts once."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import isal.igzip
import pandas as pd

import bedspace as bs
from bedspace.datasets._slice import ARCHIVE, CHROMOSOMES, COLUMNS


def test_slice_offline():
    data = bs.datasets.encode_hg19_chr21_22()
    metadata = pd.read_csv(data.metadata)
    assert len(data.files) == len(metadata) == 171
    assert sorted(p.name for p in data.files) == sorted(metadata["file_name"])
    assert list(metadata.columns) == COLUMNS
    assert metadata["assay"].value_counts().to_dict() == {"DNase-seq": 98, "TF ChIP-seq": 61, "ATAC-seq": 12}
    universe = pd.read_csv(data.universe, sep="\t", header=None)
    assert set(universe[0]) == set(CHROMOSOMES) and len(universe) == 18_522
    assert pd.read_csv(data.chrom_sizes, sep="\t", header=None)[0].tolist() == list(CHROMOSOMES)
    for path in data.files[:20]:
        chroms = {line.split(b"\t", 1)[0].decode() for line in gzip.open(path)}
        assert chroms and chroms <= set(CHROMOSOMES), path.name


def test_slice_is_extracted_once(tmp_path, monkeypatch):
    """The second call reads what the first extracted; a new cache extracts again, to the same bytes."""
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "one"))
    first = bs.datasets.encode_hg19_chr21_22()
    stamps = {p: p.stat().st_mtime_ns for p in first.files}
    again = bs.datasets.encode_hg19_chr21_22()
    assert again == first and {p: p.stat().st_mtime_ns for p in again.files} == stamps
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "two"))
    other = bs.datasets.encode_hg19_chr21_22()
    assert other.beds != first.beds
    assert [p.read_bytes() for p in other.files] == [p.read_bytes() for p in first.files]
    assert other.metadata.read_bytes() == first.metadata.read_bytes()


def test_two_processes_extract_it_at_once(tmp_path):
    """Two first uses at the same moment: both get the whole slice (one extracts, the other waits and reads it)."""
    code = "import bedspace as bs; print(len(bs.datasets.encode_hg19_chr21_22().files))"
    env = os.environ | {"BEDSPACE_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    assert [run.communicate(timeout=120)[0].strip() for run in runs] == ["171", "171"]
    assert all(run.returncode == 0 for run in runs)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [
        p.name for p in tmp_path.iterdir() if p.name.startswith("encode_hg19_chr21_22-")
    ]


def on_slice(path) -> bytes:
    """The lines of a gzipped BED file on chr21 and chr22: one block, since the collection's files are sorted."""
    text = b"\n" + isal.igzip.decompress(path.read_bytes())
    starts = [text.find(b"\n" + c.encode() + b"\t") for c in CHROMOSOMES]
    starts = [i for i in starts if i >= 0]
    if not starts:
        return b""
    last = max(text.rfind(b"\n" + c.encode() + b"\t") for c in CHROMOSOMES)
    block = text[min(starts) + 1 : text.index(b"\n", last + 1) + 1]
    lines = sum(text.count(b"\n" + c.encode() + b"\t") for c in CHROMOSOMES)
    assert block.count(b"\n") == lines, f"{path.name}: its chr21 and chr22 lines are not one block"
    return block


def test_slice_is_the_collections_own_lines(hg19):
    """Every set is exactly the collection's lines on chr21 and chr22, and the universe the consensus' there."""
    data = bs.datasets.encode_hg19_chr21_22()
    whole = pd.read_csv(hg19.metadata)
    shipped = {p.name for p in data.files}
    for name in whole["file_name"]:
        lines = on_slice(hg19.beds / name)
        if name in shipped:
            assert gzip.decompress((data.beds / name).read_bytes()) == lines, name
        else:  # left out only for having no peak there
            assert lines == b"", name
    assert gzip.decompress(data.universe.read_bytes()) == on_slice(hg19.universe)
    labels = whole.set_index("file_name").loc[sorted(shipped), ["organ", "cell_class", "assay"]]
    mine = pd.read_csv(data.metadata).set_index("file_name").loc[sorted(shipped), ["organ", "cell_class", "assay"]]
    pd.testing.assert_frame_equal(mine, labels)


def test_archive_is_small():
    """The wheel carries it: about 2 MB (the BED3 text is 15 MB)."""
    assert ARCHIVE.stat().st_size < 2.5e6
