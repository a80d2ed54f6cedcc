"""The bundled slice of the hg19 collection: its 172 region sets and consensus universe on chr21 and chr22."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import tarfile
from importlib import resources
from pathlib import Path

from .._atomic import atomic_folder
from ._collection import RegionSetCollection, cache_dir
from ._encode import METADATA, _manifest

CHROMOSOMES = ("chr21", "chr22")
ARCHIVE = Path(str(resources.files("bedspace.datasets") / "encode_hg19_chr21_22.tar.xz"))
UNIVERSE_MEMBER = "universe/hg19_consensus_min5files.bed"
#: The metadata columns of the slice: the labels and what each set is. The source columns (where to download the
#: whole file) and ``n_regions`` (of the whole file) describe the full collection, not the slice.
COLUMNS = [
    "file_name", "collection", "assay", "target", "antibody", "cell_type", "treatment", "organ", "cell_class",
    "biosample_type", "disease", "lineage", "description", "lab", "genome",
]  # fmt: skip


def encode_hg19_chr21_22() -> RegionSetCollection:
    """The labelled hg19 region sets of :func:`encode_hg19` on chromosomes 21 and 22, bundled (works offline).

    The same ENCODE DNase-seq, GM12878 TF ChIP-seq and blood ATAC-seq experiments, with the same labels, keeping
    each set's peaks on chr21 and chr22 (about 3% of the collection's regions: 639,266 of them, 3 to 16,391 per
    set; 171 sets, the one with no peak there left out) and the consensus universe's 18,522 regions there. Small
    enough to ship (2.0 MB compressed) and to train in seconds, real enough to show the method: on held-out sets
    the default annotator labels organ, cell class and assay nearly as well as on the whole genome, ahead of
    overlap and enrichment (``benchmarks/slice.py``; see *Benchmarks* in the documentation).
    ``bedspace demo`` runs on it. Extracted on first use into the cache folder (``$BEDSPACE_CACHE_DIR`` or the
    user cache), once per bedspace release.

    Returns
    -------
    :class:`RegionSetCollection` with ``beds`` (gzipped BED3, the file names of :func:`encode_hg19`),
    ``metadata`` (the label columns ``assay``, ``target``, ``cell_type``, ``treatment``, ``organ``,
    ``cell_class``, ``biosample_type``, ``disease``, ``lineage``, and ``collection``, ``description``, ``lab``),
    ``universes = {"consensus": ...}`` and ``chrom_sizes`` (chr21, chr22).

    Examples
    --------
    >>> import bedspace as bs
    >>> data = bs.datasets.encode_hg19_chr21_22()
    >>> len(data.files)
    171
    """
    archive = ARCHIVE.read_bytes()
    folder = cache_dir() / f"encode_hg19_chr21_22-{hashlib.sha256(archive).hexdigest()[:16]}"
    if not folder.is_dir():
        try:
            with atomic_folder(folder, durable=False) as tmp:
                _extract(archive, tmp)
        except FileExistsError:  # another process extracted it while this one waited: the same content
            pass
    return RegionSetCollection(
        name="encode_hg19_chr21_22",
        beds=folder / "beds",
        metadata=folder / METADATA,
        universes={"consensus": folder / f"{UNIVERSE_MEMBER}.gz"},
        default_universe="consensus",
        chrom_sizes=folder / "universe" / "hg19.chrom.sizes",
    )


def _extract(archive: bytes, folder: Path) -> None:
    """Write the archive's sets and universe gzipped (as the whole collection's), its sizes and the metadata."""
    sets = []
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(archive)), mode="r:") as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member).read()
            target = folder / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.name.endswith(".bed"):
                if member.name.startswith("beds/"):
                    sets.append(f"{target.name}.gz")
                target.with_name(f"{target.name}.gz").write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
            else:
                target.write_bytes(content)
    metadata = _manifest()
    metadata = metadata.loc[metadata["file_name"].isin(sets), COLUMNS]
    (folder / METADATA).write_bytes(metadata.to_csv(index=False).encode())  # the folder is swapped in whole
