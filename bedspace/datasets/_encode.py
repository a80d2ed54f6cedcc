"""The labelled hg19 collection: 172 ENCODE DNase, ENCODE TF ChIP and blood ATAC region sets."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .._atomic import atomic_write_bytes
from .._download import fetch as _fetch
from .._formats.bed import format_bed3, read_intervals, write_bed
from ..pp._universe import consensus_universe, tile_universe
from ._collection import RegionSetCollection, cache_dir
from ._files import ChecksumMismatchError, check_sha256, write_chrom_sizes

FOLDER = "hg19_bedsets"
METADATA = "metadata.csv"
UNIVERSES = {
    "consensus": "universe/hg19_consensus_min5files.bed.gz",
    "tiles_5kb": "universe/hg19_tiles_5kb.bed.gz",
}
CHROM_SIZES = "universe/hg19.chrom.sizes"
CHROMOSOMES = [f"chr{i}" for i in range(1, 23)] + ["chrX", "chrY"]

#: Where the originals are fetched from; ``{repository}``, ``{commit}``, ``{path}`` come from the metadata's
#: ``source_repository``, ``source_commit`` and ``source_path`` columns and ``{name}`` is the file name of
#: ``source_path``. Both URLs can be pointed at a mirror (``https://``, ``http://``, ``ftp://`` or ``file://``).
SOURCE_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
CHROM_SIZES_URL = "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.chrom.sizes"

#: The expected content of every download, bundled beside the metadata (one row per file, same order):
#: ``source_sha256`` is the sha256 of the original file exactly as served at its pinned commit (``SOURCE_URL``),
#: ``bed3_sha256`` the sha256 of the decompressed BED3 text :func:`_to_bed3` makes of it (the text of the
#: collection's ``beds/`` files).
CHECKSUMS = "encode_hg19_checksums.csv"
#: sha256 of the chromosome sizes as written: the ``chrom<TAB>size`` lines of chr1–22, X, Y. UCSC's file is not
#: pinned to a version and lists ~70 other sequences, so its bytes as downloaded are not checked; the sizes kept are.
CHROM_SIZES_SHA256 = "1c30d456d114736bbf2b156c069f0799b5da288e300cab4166f334f9b9b22547"


def encode_hg19(path: str | os.PathLike | None = None) -> RegionSetCollection:
    """172 labelled hg19 region sets with two universes: ENCODE DNase-seq, GM12878 TF ChIP-seq, blood ATAC-seq.

    98 ENCODE uniform DNase-seq peak sets (~95 cell types), 62 ENCODE uniform TF ChIP-seq peak sets in GM12878
    and 12 ATAC-seq peak sets of FACS-sorted blood populations, as BED3 (chr1–22, X, Y). The metadata has the
    label columns ``assay``, ``target``, ``cell_type``, ``treatment``, ``organ``, ``cell_class``,
    ``biosample_type``, ``disease`` and ``lineage``; good fields for retrieval are ``organ``, ``cell_class``,
    ``assay``, ``biosample_type`` and ``disease``.

    Parameters
    ----------
    path
        A local copy: a folder holding ``hg19_bedsets/`` or that folder itself. Defaults to
        ``$BEDSPACE_DATA_DIR``. When neither is given, the originals are downloaded (≈150 MB, once, with pooch)
        into the cache folder (``$BEDSPACE_CACHE_DIR`` or the user cache), converted to BED3, and the universes are
        built: 5 kb tiles of hg19, and the consensus of the 172 sets (regions supported by ≥ 5 sets, see
        :func:`bedspace.pp.consensus_universe`). Each original must have the sha256 it has at its pinned commit
        (pooch's ``known_hash``), each converted set the sha256 of the collection's BED3 text, and the chromosome
        sizes theirs; a copy downloaded by an earlier bedspace is checked again, and what differs is downloaded
        again.

    Returns
    -------
    :class:`RegionSetCollection` with ``beds``, ``metadata``, ``universes`` (``"consensus"``, the default, and
    ``"tiles_5kb"``) and ``chrom_sizes``.

    Raises
    ------
    ValueError
        A download, or the BED3 text made of it, does not have the expected sha256 (``ChecksumMismatchError``,
        naming the file and both digests); it is not kept. Or the chromosome sizes lack one of chr1–22, X, Y.
    OSError
        A download failed; the message names the URL.
    """
    root = path if path is not None else os.environ.get("BEDSPACE_DATA_DIR")
    if root is not None:
        return _local(Path(root))
    target = cache_dir() / FOLDER
    marker = target / ".complete"
    # the marker holds the digest of the checksums it was verified against: a copy made by an earlier bedspace
    # (another converter, other checksums) is verified again, and what differs is fetched again
    if not (marker.exists() and marker.read_text() == _checksums_digest()):
        _download(target)
    return _local(target)


def _local(root: Path) -> RegionSetCollection:
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    needed = [METADATA, "beds", *UNIVERSES.values(), CHROM_SIZES]
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a copy of the hg19 collection: missing {missing}")
    return RegionSetCollection(
        name="encode_hg19",
        beds=folder / "beds",
        metadata=folder / METADATA,
        universes={name: folder / rel for name, rel in UNIVERSES.items()},
        default_universe="consensus",
        chrom_sizes=folder / CHROM_SIZES,
    )


def _to_bed3(original: Path) -> bytes:
    """Chrom, start, end of chr1–22, X, Y, sorted and unique like ``sort -k1,1 -k2,2n -u`` (as the collection is).

    ``sort -u`` with keys keeps one line per (chrom, start): here the one with the smallest end. A narrowPeak file
    lists an interval once per summit, and ``n_regions`` in the metadata counts the intervals kept. Returns the
    BED3 text.
    """
    frame = read_intervals(original).to_frame()
    frame = frame[frame["Chromosome"].isin(CHROMOSOMES)].copy()
    frame["Chromosome"] = frame["Chromosome"].astype(str)
    frame = frame.sort_values(["Chromosome", "Start", "End"], kind="stable")
    return format_bed3(frame.drop_duplicates(["Chromosome", "Start"]))


def _manifest() -> pd.DataFrame:
    """Read the collection's metadata, bundled with bedspace: labels and where each original file lives."""
    return pd.read_csv(resources.files("bedspace.datasets") / "encode_hg19_metadata.csv")


def _checksums() -> pd.DataFrame:
    """The expected sha256 of each file's original and of its BED3 text, indexed by ``file_name``."""
    return pd.read_csv(resources.files("bedspace.datasets") / CHECKSUMS, index_col="file_name")


def _checksums_digest() -> str:
    expected = _checksums()
    return hashlib.sha256(f"{expected.to_csv()}{CHROM_SIZES_SHA256}".encode()).hexdigest()


def _bed3_matches(bed: Path, expected: str) -> bool:
    """Whether a BED file kept from an earlier run holds the expected text."""
    try:
        text = gzip.decompress(bed.read_bytes())
    except (OSError, EOFError):
        return False
    return hashlib.sha256(text).hexdigest() == expected


def _download_set(row, expected: pd.Series, originals: Path, bed: Path) -> None:
    """Fetch one original, check it, convert it, check the BED3 text, write it."""
    original = originals / Path(row.source_path).name
    url = SOURCE_URL.format(
        repository=row.source_repository, commit=row.source_commit, path=row.source_path, name=original.name
    )
    _fetch(url, original, desc=row.file_name, sha256=expected["source_sha256"])
    try:
        text = _to_bed3(original)
    finally:
        original.unlink()
    check_sha256(
        hashlib.sha256(text).hexdigest(),
        expected["bed3_sha256"],
        what=f"{row.file_name} (converted to BED3 from {url}; the original's checksum was right, so the converter "
        "differs from the one that made the collection)",
    )
    atomic_write_bytes(gzip.compress(text, compresslevel=6, mtime=0), bed)


def _read_chrom_sizes(path: Path, url: str) -> dict[str, int]:
    """The sizes of chr1–22, X, Y in a UCSC ``chrom<TAB>size`` file; other lines are ignored."""
    sizes = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] in CHROMOSOMES and fields[1].strip().isdigit():
            sizes[fields[0]] = int(fields[1])
    missing = [c for c in CHROMOSOMES if c not in sizes]
    if missing:
        raise ValueError(f"the chromosome sizes downloaded from {url} lack {missing}: not a hg19.chrom.sizes file")
    return sizes


def _download_chrom_sizes(sizes_path: Path) -> None:
    download = sizes_path.with_suffix(".all")
    _fetch(CHROM_SIZES_URL, download, desc="hg19.chrom.sizes")
    try:
        sizes = _read_chrom_sizes(download, CHROM_SIZES_URL)
    finally:
        download.unlink()
    text = "".join(f"{c}\t{sizes[c]}\n" for c in CHROMOSOMES)
    check_sha256(
        hashlib.sha256(text.encode()).hexdigest(),
        CHROM_SIZES_SHA256,
        what=f"the chr1–22, X, Y sizes of {CHROM_SIZES_URL} (these are not hg19's)",
    )
    write_chrom_sizes({c: sizes[c] for c in CHROMOSOMES}, sizes_path)


def _download(target: Path) -> None:
    metadata = _manifest()
    expected = _checksums()
    unknown = sorted(set(metadata["file_name"]) - set(expected.index))
    if unknown:
        raise ChecksumMismatchError(f"no checksum is bundled for {unknown}: bedspace's metadata and checksums differ")
    originals = target / "originals"
    for row in tqdm(list(metadata.itertuples(index=False)), desc="downloading hg19 region sets", unit="file"):
        bed = target / "beds" / row.file_name
        if bed.exists() and _bed3_matches(bed, expected.loc[row.file_name, "bed3_sha256"]):
            continue
        _download_set(row, expected.loc[row.file_name], originals, bed)
    shutil.rmtree(originals, ignore_errors=True)
    atomic_write_bytes(metadata.to_csv(index=False).encode(), target / METADATA)
    sizes_path = target / CHROM_SIZES
    _download_chrom_sizes(sizes_path)
    write_bed(pd.DataFrame(tile_universe(sizes_path, 5000)), target / UNIVERSES["tiles_5kb"])
    write_bed(pd.DataFrame(consensus_universe(target / "beds", min_sets=5)), target / UNIVERSES["consensus"])
    atomic_write_bytes(_checksums_digest().encode(), target / ".complete")
