"""Make the bundled slice of the hg19 collection: its 172 region sets and consensus universe on chr21 and chr22.

Run by a maintainer, from a local copy of the collection (a folder holding ``hg19_bedsets/``)::

    python scripts/make_encode_hg19_slice.py PATH

It writes ``bedspace/datasets/encode_hg19_chr21_22.tar.xz``: ``beds/<set>.bed`` (the collection's BED3 lines on
chr21 and chr22, unchanged; a set with none there is left out), ``universe/hg19_consensus_min5files.bed`` (the consensus universe's regions there) and
``universe/hg19.chrom.sizes`` (the two chromosomes' sizes). The labels are not in the archive: the loader takes them
from the metadata bundled for the whole collection. The archive is byte-for-byte reproducible (sorted members,
fixed times and owners), and ``tests/data/test_bundled_slice.py`` checks it against the collection.
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
import tarfile
from pathlib import Path

from bedspace.datasets._encode import CHROM_SIZES, FOLDER, UNIVERSES, _manifest
from bedspace.datasets._slice import ARCHIVE, CHROMOSOMES, UNIVERSE_MEMBER


def lines_on_slice(path: Path) -> bytes:
    """The lines of a (gzipped) BED file on the slice's chromosomes, as they are."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return b"".join(line for line in handle if line.split(b"\t", 1)[0].decode() in CHROMOSOMES)


def main(root: Path) -> None:
    """Write the archive from the collection at ``root``."""
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    members: dict[str, bytes] = {}
    for name in sorted(_manifest()["file_name"]):
        lines = lines_on_slice(folder / "beds" / name)
        if lines:  # a set with no peak on the slice (one TF ChIP) is left out, not shipped empty
            members[f"beds/{name.removesuffix('.gz')}"] = lines
        else:
            print(f"left out {name}: no region on {', '.join(CHROMOSOMES)}")
    members[UNIVERSE_MEMBER] = lines_on_slice(folder / UNIVERSES["consensus"])
    sizes = (folder / CHROM_SIZES).read_bytes().splitlines(keepends=True)
    members["universe/hg19.chrom.sizes"] = b"".join(s for s in sizes if s.split(b"\t")[0].decode() in CHROMOSOMES)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 0, 0o644
            tar.addfile(info, io.BytesIO(content))
    ARCHIVE.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    regions = sum(content.count(b"\n") for name, content in members.items() if name.startswith("beds/"))
    print(f"wrote {ARCHIVE}: {len(members) - 2} sets, {regions:,} regions, {ARCHIVE.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
