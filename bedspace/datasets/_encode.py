"""The labelled hg19 collection: 172 ENCODE DNase, ENCODE TF ChIP and blood ATAC region sets."""

from __future__ import annotations

import os
import shutil
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._atomic import atomic_path, atomic_write_bytes
from .._formats.bed import read_intervals, write_bed
from ..pp._universe import consensus_universe, tile_universe
from ._collection import RegionSetCollection, cache_dir
from ._files import write_chrom_sizes

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
#: ``source_path``. Both URLs can be pointed at a mirror.
SOURCE_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
CHROM_SIZES_URL = "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.chrom.sizes"


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
        ``$BEDSPACE_DATA_DIR``. When neither is given, the originals are downloaded (≈150 MB, once) into the cache
        folder (``$BEDSPACE_CACHE_DIR`` or the user cache), converted to BED3, and the universes are built: 5 kb
        tiles of hg19, and the consensus of the 172 sets (regions supported by ≥ 5 sets, see
        :func:`bedspace.pp.consensus_universe`).

    Returns
    -------
    :class:`RegionSetCollection` with ``beds``, ``metadata``, ``universes`` (``"consensus"``, the default, and
    ``"tiles_5kb"``) and ``chrom_sizes``.
    """
    root = path if path is not None else os.environ.get("BEDSPACE_DATA_DIR")
    if root is not None:
        return _local(Path(root))
    target = cache_dir() / FOLDER
    if not (target / ".complete").exists():
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


def _fetch(url: str, destination: Path, *, desc: str) -> None:
    """Download ``url`` to ``destination`` atomically, with a progress bar."""
    try:
        with atomic_path(destination) as tmp, urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:
        raise OSError(f"could not download {url}: {err}") from err


def _to_bed3(original: Path, destination: Path) -> None:
    """Keep chrom, start, end of chr1–22, X, Y, sorted like ``sort -k1,1 -k2,2n`` (as the collection is)."""
    frame = read_intervals(original).to_frame()
    frame = frame[frame["Chromosome"].isin(CHROMOSOMES)].copy()
    frame["Chromosome"] = frame["Chromosome"].astype(str)
    frame = frame.sort_values(["Chromosome", "Start", "End"], kind="stable")
    write_bed(frame, destination)


def _manifest() -> pd.DataFrame:
    """Read the collection's metadata, bundled with bedspace: labels and where each original file lives."""
    return pd.read_csv(resources.files("bedspace.datasets") / "encode_hg19_metadata.csv")


def _download(target: Path) -> None:
    metadata = _manifest()
    originals = target / "originals"
    rows = list(metadata.itertuples(index=False))
    for row in tqdm(rows, desc="downloading hg19 region sets", unit="file"):
        bed = target / "beds" / row.file_name
        if bed.exists():
            continue
        original = originals / Path(row.source_path).name
        url = SOURCE_URL.format(
            repository=row.source_repository,
            commit=row.source_commit,
            path=row.source_path,
            name=original.name,
        )
        _fetch(url, original, desc=row.file_name)
        _to_bed3(original, bed)
        original.unlink()
    shutil.rmtree(originals, ignore_errors=True)
    atomic_write_bytes(metadata.to_csv(index=False).encode(), target / METADATA)

    sizes_path = target / CHROM_SIZES
    _fetch(CHROM_SIZES_URL, sizes_path.with_suffix(".all"), desc="hg19.chrom.sizes")
    sizes_all = pd.read_csv(sizes_path.with_suffix(".all"), sep="\t", header=None, names=["chrom", "size"])
    sizes = dict(zip(sizes_all["chrom"], sizes_all["size"].astype(np.int64), strict=True))
    write_chrom_sizes({c: int(sizes[c]) for c in CHROMOSOMES}, sizes_path)
    sizes_path.with_suffix(".all").unlink()
    write_bed(pd.DataFrame(tile_universe(sizes_path, 5000)), target / UNIVERSES["tiles_5kb"])
    write_bed(pd.DataFrame(consensus_universe(target / "beds", min_sets=5)), target / UNIVERSES["consensus"])
    atomic_write_bytes(b"", target / ".complete")
