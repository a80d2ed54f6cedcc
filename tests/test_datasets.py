from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import threading

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace.datasets import _encode
from bedspace.datasets._files import ChecksumMismatchError


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


@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """A folder served over HTTP on localhost (as pooch downloads from the web): ``(folder, base_url)``."""
    folder = tmp_path / "mirror"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # a proxy of the environment must not be asked
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_encode_hg19_download(hg19, tmp_path, monkeypatch, http_mirror):
    """The download path, through pooch from a local HTTP mirror of the originals, on 10 of the files."""
    import pooch

    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BEDSPACE_DATA_DIR", raising=False)
    manifest = _encode._manifest()
    subset = manifest.groupby("collection").head(4).head(10).reset_index(drop=True)
    monkeypatch.setattr(_encode, "_manifest", lambda: subset)
    mirror, base = http_mirror
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
    monkeypatch.setattr(_encode, "SOURCE_URL", f"{base}/{{name}}")
    monkeypatch.setattr(_encode, "CHROM_SIZES_URL", f"{base}/hg19.chrom.sizes")
    calls = []
    retrieve = pooch.retrieve

    def spy(url, known_hash, **kwargs):
        calls.append((url, known_hash))
        return retrieve(url, known_hash, **kwargs)

    monkeypatch.setattr(pooch, "retrieve", spy)
    data = bs.datasets.encode_hg19()
    # every original through pooch, pinned to its sha256; the chromosome sizes unpinned (their kept lines are checked)
    assert calls == [
        (f"{base}/{os.path.basename(p)}", f"sha256:{digest}")
        for p, digest in zip(subset["source_path"], expected["source_sha256"], strict=True)
    ] + [(f"{base}/hg19.chrom.sizes", None)]
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
    calls.clear()
    monkeypatch.setattr(_encode, "SOURCE_URL", "file:///nonexistent/{name}")
    assert bs.datasets.encode_hg19().beds == data.beds
    assert calls == []


@pytest.mark.parametrize("where", ["file", "http"])
def test_failed_download_says_which_url(tmp_path, monkeypatch, http_mirror, where):
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BEDSPACE_DATA_DIR", raising=False)
    base = "file:///nonexistent" if where == "file" else f"{http_mirror[1]}/nonexistent"  # an HTTP 404
    monkeypatch.setattr(_encode, "SOURCE_URL", f"{base}/{{name}}")
    with pytest.raises(OSError, match=f"could not download {re.escape(base)}/"):
        bs.datasets.encode_hg19()
    # pooch's temporary file is gone; nothing was kept
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_download_is_moved_into_place_only_when_whole_and_checked(tmp_path, http_mirror):
    """pooch writes a temporary file beside the destination and moves it only after the sha256 matched."""
    mirror, base = http_mirror
    (mirror / "a.txt").write_bytes(b"x" * 3_000_000)
    good = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    destination = tmp_path / "out" / "a.txt"
    with pytest.raises(ChecksumMismatchError) as info:
        _encode._fetch(f"{base}/a.txt", destination, desc="a", sha256="0" * 64)
    assert f"a.txt (downloaded from {base}/a.txt): sha256 is {good}, expected {'0' * 64}" in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []  # neither the file nor pooch's temporary one
    _encode._fetch(f"{base}/a.txt", destination, desc="a", sha256=good)
    assert destination.read_bytes() == b"x" * 3_000_000
    assert list((tmp_path / "out").iterdir()) == [destination]
    (mirror / "a.txt").unlink()  # a file already there with the right sha256 is not downloaded again
    _encode._fetch(f"{base}/a.txt", destination, desc="a", sha256=good)
    destination.write_bytes(b"changed")  # nor kept when it differs: fetched again, and the source is gone
    with pytest.raises(OSError, match=f"could not download {re.escape(base)}/a.txt"):
        _encode._fetch(f"{base}/a.txt", destination, desc="a", sha256=good)
    with pytest.raises(OSError, match="could not download gopher://x/a.txt: unknown protocol .gopher."):
        _encode._fetch("gopher://x/a.txt", destination, desc="a", sha256=good)
