from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace.datasets import _encode


def test_insulators_offline():
    data = bs.datasets.insulators()
    assert len(data.files) == 8
    metadata = pd.read_csv(data.metadata)
    assert sorted(metadata["file_name"]) == [p.name for p in data.files]
    assert (data.beds / "ATTRIBUTION.md").exists()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    assert adata.n_obs == 8
    assert set(adata.obs["target"]) == {"BEAF-32", "CTCF", "CP190", "Su(Hw)"}
    np.testing.assert_array_equal(
        adata.obs["n_regions"], metadata.set_index("file_name").loc[adata.obs_names, "n_regions"]
    )
    # every interval lies inside the extent the tiles cover
    assert (adata.obs["frac_regions_in_universe"] == 1.0).all()
    # the universe is a tiling: 5 kb regions, book-ended
    var = adata.var
    assert ((var["end"] - var["start"]) <= 5000).all()
    assert data.chrom_sizes.exists()


def test_insulators_universe_is_cached_and_stable():
    first = bs.datasets.insulators().universe.read_bytes()
    assert bs.datasets.insulators().universe.read_bytes() == first


def test_encode_hg19_from_data_dir(hg19):
    assert len(hg19.files) == 172
    assert set(hg19.universes) == {"consensus", "tiles_5kb"}
    assert hg19.universe == hg19.universes["consensus"]
    assert hg19.chrom_sizes.name == "hg19.chrom.sizes"


def test_encode_hg19_incomplete_folder(tmp_path):
    (tmp_path / "metadata.csv").write_text("file_name\n")
    with pytest.raises(FileNotFoundError, match="missing .*beds"):
        bs.datasets.encode_hg19(tmp_path)


def test_encode_hg19_download(hg19, tmp_path, monkeypatch):
    """The download path, served from a local mirror of the originals (file:// URLs), on 10 of the files."""
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BEDSPACE_DATA_DIR", raising=False)
    manifest = _encode._manifest()
    subset = manifest.groupby("collection").head(4).head(10).reset_index(drop=True)
    monkeypatch.setattr(_encode, "_manifest", lambda: subset)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for row in subset.itertuples():
        # originals are narrowPeak, unsorted, with other chromosomes: give the mirror that shape
        text = gzip.decompress((hg19.beds / row.file_name).read_bytes()).decode()
        lines = [f"{line}\tpeak\t0\t.\t1.0\t1.0\t1.0\t50" for line in text.splitlines()][::-1]
        lines.insert(7, "chrM\t100\t200\tpeak\t0\t.\t1.0\t1.0\t1.0\t50")
        (mirror / os.path.basename(row.source_path)).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), 1))
    # the mirror's originals are made here, so their sha256 are too; their BED3 text must be the collection's
    expected = _encode._checksums().loc[subset["file_name"]].copy()
    expected["source_sha256"] = [
        hashlib.sha256((mirror / os.path.basename(p)).read_bytes()).hexdigest() for p in subset["source_path"]
    ]
    monkeypatch.setattr(_encode, "_checksums", lambda: expected)
    sizes = mirror / "hg19.chrom.sizes"
    sizes.write_text("chrM\t16571\nchr6_apd_hap1\t4622290\n" + hg19.chrom_sizes.read_text())
    monkeypatch.setattr(_encode, "SOURCE_URL", f"file://{mirror}/{{name}}")
    monkeypatch.setattr(_encode, "CHROM_SIZES_URL", f"file://{sizes}")
    data = bs.datasets.encode_hg19()
    assert data.beds == tmp_path / "cache" / "hg19_bedsets" / "beds"
    assert [p.name for p in data.files] == sorted(subset["file_name"])
    for name in subset["file_name"]:
        assert gzip.decompress((data.beds / name).read_bytes()) == gzip.decompress((hg19.beds / name).read_bytes())
    assert data.chrom_sizes.read_text() == hg19.chrom_sizes.read_text()
    pd.testing.assert_frame_equal(pd.read_csv(data.metadata), subset)
    assert gzip.decompress(data.universes["tiles_5kb"].read_bytes()) == gzip.decompress(
        hg19.universes["tiles_5kb"].read_bytes()
    )
    consensus = pd.DataFrame(bs.pp.consensus_universe(data.beds, min_sets=5))
    assert len(bs.io.read_bed(data.universes["consensus"])) == len(consensus) > 0
    assert not (data.beds.parent / "originals").exists()
    # a second call finds the finished download and fetches nothing
    monkeypatch.setattr(_encode, "SOURCE_URL", "file:///nonexistent/{name}")
    assert bs.datasets.encode_hg19().beds == data.beds


def test_failed_download_says_which_url(tmp_path, monkeypatch):
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BEDSPACE_DATA_DIR", raising=False)
    monkeypatch.setattr(_encode, "SOURCE_URL", "file:///nonexistent/{name}")
    with pytest.raises(OSError, match="could not download file:///nonexistent/"):
        bs.datasets.encode_hg19()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
