"""Model folders: a trained model saved as a self-describing, checksummed folder (no pickle), opened in a blink.

Format 4 (written by :func:`save`)::

    model.json            format, bedspace version, dim, counts, parameters, universe (name, chromosome sizes,
                          genome build: ``assembly``, when known; older folders lack it), loss, the set space
                          (``set_space``: how a set's vector is made of its region vectors, ``null`` for
                          StarSpace's normalised sum), and the size and sha256 of every other file
    universe.npz          the regions (compressed): chromosome names, each region's chromosome, start and end
    region_vectors.npy    regions × dim, float16 (memory-mapped: a query reads the rows of its regions only)
    labels.tsv            field and value of each label
    label_vectors.npy     labels × dim, float32
    sets.h5ad             the reference sets' metadata (``.obs``, every dtype kept), read on first use
    set_vectors.npy       sets × dim, float32 (memory-mapped)
    tokens_indptr.npy     the sets' tokens: where each set's regions start (int64) ...
    tokens_gaps.npy       ... each region as the gap from the set's previous one (uint16; memory-mapped: r2l
                          decodes the annotator's fitted sets only) ...
    tokens_escaped.npy    ... the gaps too wide for 16 bits, in full (int64) ...
    tokens_escaped_ptr.npy  ... and where each set's wide gaps start (int64)
    annotator.npz         the default annotator (:meth:`~bedspace.annotate.RegionAnnotator.to_record`, flattened)

The sizes follow from what a search needs. The region vectors are most of a folder: 2 bytes × dim per universe
region (574,740 regions × 100 dimensions: 115 MB). They are kept as float16: a query's vector is their sum in
float32, and ``benchmarks/evaluate.py --stored-float16`` answers as with float32 to three decimals. The tokens
(the default annotator compares a query's regions with the sets') are 2 bytes per region of each set: the gaps
between a set's sorted regions are short (on a 574,740-region universe, a few in a million need more than 16
bits). The set vectors stay float32 (they are what queries are ranked against); everything else is small.
Each file is checked against its checksum when it is first read, so a search reads (and checks) only the files
it needs. Every file is opened when the folder is loaded, relative to the folder rather than by path (no reading:
opening is cheap), so that a model is one save's, whole, even when another save replaces the folder while it is
loaded or used (a save swaps a new folder in and deletes the old one); a load that meets the folder replaced under
it starts again.

Format 3 (format 4 without ``set_space``: every model then had StarSpace's set vectors; a bedspace that reads
only format 3 would embed queries of a model with a set space wrongly, so it is told to upgrade), format 2
(``reference.h5ad`` with the tokens, the annotator in ``model.json``, ``classifier.npz``) and format 1 (bedspace
0.1: no checksums, sets as CSV) are read too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import weakref
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from ._atomic import atomic_folder, temporary_of
from ._engine.native import SetSpace
from ._formats.bed import read_intervals
from ._labels import LabelTable
from ._legacy import classifier_of_arrays, legacy_record
from ._plain import json_default
from ._quiet import quiet_anndata_io
from ._reference import ReferenceSets
from ._universe import Universe
from ._version import __version__
from ._warnings import warn
from .annotate import RegionAnnotator, TokenMatrix
from .annotate._estimator import flatten, unflatten
from .annotate._tokens import CHUNK_TOKENS, CodedTokens

FORMAT = "bedspace-model"
FORMAT_VERSION = 4
MANIFEST = "model.json"
FILES = {
    "universe": "universe.npz",
    "region_vectors": "region_vectors.npy",
    "labels": "labels.tsv",
    "label_vectors": "label_vectors.npy",
}
SET_FILES = {"sets": "sets.h5ad", "set_vectors": "set_vectors.npy"}
TOKEN_FILES = {
    "tokens_indptr": "tokens_indptr.npy",
    "tokens_gaps": "tokens_gaps.npy",
    "tokens_escaped": "tokens_escaped.npy",
    "tokens_escaped_ptr": "tokens_escaped_ptr.npy",
}
#: How region vectors are stored: see the module's notes.
REGION_VECTOR_DTYPE = np.float16
ANNOTATOR_FILE = "annotator.npz"
_V2_FILES = {"universe": "universe.bed.gz", "reference": "reference.h5ad", "classifier": "classifier.npz"}
_V1_SET_FILES = {"sets": "sets.csv.gz", "set_vectors": "set_vectors.npy"}  # folders of format 1 (bedspace 0.1)
# files opened relative to the folder opened at load (see _Folder); not on Windows
_BY_FOLDER = os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")


def save(model, folder: Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` into ``folder`` (format 4), atomically: a crash leaves no half-written folder."""
    reference = model.reference
    with atomic_folder(folder, overwrite=overwrite, replaceable=is_model_folder) as tmp:
        regions = model.universe.regions
        chroms = regions["chrom"].cat
        np.savez_compressed(
            tmp / FILES["universe"], chroms=np.asarray(chroms.categories, dtype=str),
            codes=np.asarray(chroms.codes, dtype=np.int32), starts=regions["start"].to_numpy(np.int64),
            ends=regions["end"].to_numpy(np.int64),
        )  # fmt: skip
        np.save(
            tmp / FILES["region_vectors"], np.asarray(model.region_vectors, REGION_VECTOR_DTYPE), allow_pickle=False
        )
        model.label_table.frame.to_csv(tmp / FILES["labels"], sep="\t", index=False)
        np.save(tmp / FILES["label_vectors"], model.label_vectors, allow_pickle=False)
        files = dict(FILES)
        if reference is not None:
            import anndata as ad

            from ._outputs import write_h5ad  # a full disk is an error here, never HDF5's segfault at exit

            with quiet_anndata_io():
                write_h5ad(ad.AnnData(obs=reference.metadata.copy()), tmp / SET_FILES["sets"])
            np.save(tmp / SET_FILES["set_vectors"], np.asarray(reference.vectors, dtype=np.float32), allow_pickle=False)
            files["sets"], files["set_vectors"] = SET_FILES["sets"], SET_FILES["set_vectors"]
            if reference.tokens is not None:
                _write_tokens(reference.tokens, tmp)
                files.update(TOKEN_FILES)
            if reference.annotator is not None:
                np.savez(tmp / ANNOTATOR_FILE, **flatten(reference.annotator.to_record()))
                files["annotator"] = ANNOTATOR_FILE
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "bedspace_version": __version__,
            "dim": model.dim,
            "n_regions": len(model.universe),
            "n_labels": len(model.label_table),
            "n_sets": None if reference is None else len(reference),
            "universe": model.universe.record(),
            "params": model.params,
            "loss": model.loss.tolist(),
            "provenance": model.provenance,
            "set_space": None if model.space is None else model.space.record(),
            "files": {role: {"name": name, **fingerprint(tmp / name)} for role, name in files.items()},
        }
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=json_default) + "\n")
    return folder


def _write_tokens(tokens: TokenMatrix, folder: Path) -> None:
    """The sets' tokens as gaps (:class:`~bedspace.annotate._tokens.CodedTokens`), a chunk of rows at a time.

    A backed collection is never read whole: each chunk of rows is read, encoded and written in place.
    """
    chunks = list(tokens.chunks(CHUNK_TOKENS))
    counts = np.zeros(tokens.n_sets, np.int64)
    for start, stop in chunks:
        counts[start:stop] = tokens.read(np.arange(start, stop)).sizes
    indptr = np.zeros(tokens.n_sets + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    gaps = np.lib.format.open_memmap(
        folder / TOKEN_FILES["tokens_gaps"], mode="w+", dtype=np.uint16, shape=(int(indptr[-1]),)
    )
    escaped, escaped_counts = [np.zeros(0, np.int64)], np.zeros(tokens.n_sets, np.int64)
    for start, stop in chunks:
        rows = tokens.read(np.arange(start, stop)).to_csr()
        coded = CodedTokens.encode(rows.indptr, rows.indices)
        gaps[indptr[start] : indptr[stop]] = coded.gaps
        escaped.append(coded.escaped)
        escaped_counts[start:stop] = np.diff(coded.escaped_ptr)
    gaps.flush()
    del gaps
    escaped_ptr = np.zeros(tokens.n_sets + 1, np.int64)
    np.cumsum(escaped_counts, out=escaped_ptr[1:])
    np.save(folder / TOKEN_FILES["tokens_indptr"], indptr, allow_pickle=False)
    np.save(folder / TOKEN_FILES["tokens_escaped"], np.concatenate(escaped), allow_pickle=False)
    np.save(folder / TOKEN_FILES["tokens_escaped_ptr"], escaped_ptr, allow_pickle=False)


class ModelReplacedError(FileNotFoundError):
    """A model folder was replaced (by another save) or removed while a model was being read from it."""


#: Loads that meet a folder replaced under them start again, this many times in all.
LOAD_ATTEMPTS = 3


def load(cls, folder: Path):
    """Open the model folder ``folder`` (formats 1 to 4) as a ``cls`` (:class:`~bedspace.BEDSpaceModel`).

    A save that replaces the folder while it is being opened makes the load start again (on the new folder): the
    model handed out is one save's, whole.
    """
    for attempt in range(LOAD_ATTEMPTS):
        try:
            with _Folder(folder) as opened:
                return _load(cls, opened)
        except ModelReplacedError:
            if attempt == LOAD_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _load(cls, folder: _Folder):
    manifest = _read_manifest(folder)
    version = manifest["format_version"]
    if version == 1:
        return _load_format_1(cls, folder.path, manifest)
    files = _Files(folder, manifest, FILES if version >= 3 else {**FILES, "universe": _V2_FILES["universe"]})
    if version == 2:
        _check_format_2(folder.path, manifest)
    dim = manifest.get("dim")
    info = manifest.get("universe") or {}
    name, chrom_sizes = str(info.get("name", "universe")), info.get("chrom_sizes")
    if version >= 3:
        universe = files.read("universe", lambda handle: _read_universe(handle, name, chrom_sizes))
    else:
        universe = Universe.from_intervals(
            _read(read_intervals, files.path("universe")), name=name, chrom_sizes=chrom_sizes
        )
    if info.get("assembly") is not None:  # the genome build: optional (older folders do not record it)
        universe = universe.with_assembly(str(info["assembly"]))
    labels = files.read(
        "labels", lambda handle: LabelTable.from_frame(pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False))
    )
    model = cls(
        universe,
        lambda: files.vectors("region_vectors", len(universe), dim, "universe regions", mmap=version >= 3),
        labels,
        files.vectors("label_vectors", len(labels), dim, "labels"),
        params=manifest.get("params") or {},
        loss=np.asarray(manifest.get("loss") or [], dtype=np.float64),
        provenance=manifest.get("provenance") or {},
        space=_set_space(manifest, folder.path),
    )
    reference = _reference_v3(files, manifest, dim) if version >= 3 else _reference_v2(files, manifest, dim, model)
    if reference is not None:
        model._attach(reference)
    _warn_without_annotator(folder.path, model, "sets" if version >= 3 else "reference")
    return model


def _check_format_2(folder: Path, manifest: dict) -> None:
    """Refuse a format-3 manifest relabelled format 2 (which has no checksum of its own) to get past its checksum."""
    files = manifest["files"]  # checked by _Files
    found = sorted(set(files) - set(FILES) - set(_V2_FILES))
    if "manifest_sha256" in manifest:
        found.append("manifest_sha256")
    universe = files["universe"].get("name") if isinstance(files.get("universe"), dict) else None
    if universe not in (None, _V2_FILES["universe"]):
        found.append(f"the universe as {universe}")
    if found:
        raise ValueError(
            f"{folder / MANIFEST} says format_version 2, but holds what only format 3 writes ({', '.join(found)}): "
            "it was edited after the model was saved; re-save the model"
        )


def _warn_without_annotator(folder: Path, model, sets_role: str) -> None:
    """Say so when a folder's searches will rank by cosines: the default annotator is not there.

    A model saved without one (from StarSpace, or with sets that carry no tokens) and a ``model.json`` edited by
    hand to drop its entry look the same; either way the user learns that r2l is not the default annotator's.
    """
    if model.annotator is not None:
        return
    if model.reference is None:
        what = f"no reference sets and no annotator ({MANIFEST} lists no {sets_role!r} file)"
        then = "r2l ranks labels by the embedding's cosines (method='embedding'), and l2r and r2r have no sets"
        saved = "its sets"
    else:
        what = f"no annotator ({MANIFEST} lists no annotator file{'' if model.reference.tokens else ' nor tokens'})"
        then = "r2l, l2r and r2r rank by the embedding's cosines (method='embedding'), not by the default annotator"
        saved = "one"
    warn(
        f"{folder} carries {what}: {then}; if the model was saved with {saved}, {MANIFEST} was edited: save the "
        "model again from its trained AnnData"
    )


def _read_universe(handle: BinaryIO, name: str, chrom_sizes) -> Universe:
    with np.load(handle, allow_pickle=False) as arrays:
        chroms, codes = arrays["chroms"], arrays["codes"]
        starts, ends = arrays["starts"], arrays["ends"]
    chrom = pd.Categorical.from_codes(codes, categories=[str(c) for c in chroms])
    return Universe(pd.DataFrame({"chrom": chrom, "start": starts, "end": ends}), name=name, chrom_sizes=chrom_sizes)


def _reference_v3(files: _Files, manifest: dict, dim) -> ReferenceSets | None:
    if "sets" not in files.roles:
        return None
    n_sets = manifest.get("n_sets")
    if isinstance(n_sets, bool) or not isinstance(n_sets, int) or n_sets < 0:
        raise ValueError(f"{files.folder / MANIFEST}: n_sets must be a whole number, got {n_sets!r}")
    vectors = files.vectors("set_vectors", n_sets, dim, "sets", mmap=True)
    tokens = None
    if "tokens_indptr" in files.roles:
        indptr = files.array("tokens_indptr", mmap=False)
        coded = CodedTokens(
            files.array("tokens_gaps", mmap=True), files.array("tokens_escaped", mmap=False),
            files.array("tokens_escaped_ptr", mmap=False),
        )  # fmt: skip
        if (
            indptr.shape != (n_sets + 1,) or coded.escaped_ptr.shape != (n_sets + 1,)
            or indptr[-1] != coded.gaps.size or coded.escaped_ptr[-1] != coded.escaped.size
            or coded.gaps.dtype != np.uint16
        ):  # fmt: skip
            raise ValueError(f"{files.folder}: the tokens' arrays do not fit each other or the {n_sets} sets")
        tokens = TokenMatrix.from_coded(indptr, coded, int(manifest["n_regions"]))
    annotator = None
    if "annotator" in files.roles:
        path = files.folder / files.name("annotator")
        if tokens is None:  # save writes the annotator only with the tokens it compares
            raise ValueError(f"{files.folder / MANIFEST} lists an annotator but not the sets' tokens it compares")
        record = files.read("annotator", lambda handle: unflatten(dict(np.load(handle, allow_pickle=False))))
        try:
            # the tokens' and the annotator's files are checked against their checksums: saved together
            annotator = RegionAnnotator.from_record(record, tokens, check=False)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return ReferenceSets(lambda: files.read("sets", _read_obs), vectors, tokens, annotator=annotator, n_sets=n_sets)


def _read_obs(handle: BinaryIO) -> pd.DataFrame:
    import anndata as ad

    try:
        with quiet_anndata_io():
            return ad.read_h5ad(handle).obs
    except Exception as err:  # h5py and anndata raise many kinds; the user needs the file's name
        raise ValueError(f"not a readable metadata file ({type(err).__name__}: {err})") from None


def _reference_v2(files: _Files, manifest: dict, dim, model) -> ReferenceSets | None:
    """A format-2 reference (``reference.h5ad`` with the tokens) and its annotator, as format 3 holds them."""
    if "reference" not in files.roles:
        return None
    import anndata as ad
    import scipy.sparse as sp

    path = files.folder / files.name("reference")
    try:
        with files.open("reference") as handle, quiet_anndata_io():
            adata = ad.read_h5ad(handle)
        vectors = np.asarray(adata.obsm["X"])
        tokens = adata.X if sp.issparse(adata.X) and adata.X.nnz else None
    except Exception as err:  # h5py and anndata raise many kinds; the user needs the file's name
        raise ValueError(f"{path}: not a readable reference collection ({type(err).__name__}: {err})") from None
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"{path}: set vectors have dimension {vectors.shape[-1]}, {MANIFEST} says {dim}")
    reference = ReferenceSets(adata.obs, vectors, tokens)
    if tokens is None:
        return reference
    seed = int(model.params.get("random_state", 0) or 0)
    old = manifest.get("annotator")
    classifier = None
    if "classifier" in files.roles:
        classifier = files.read(
            "classifier", lambda handle: classifier_of_arrays(dict(np.load(handle, allow_pickle=False)))
        )
    record = legacy_record(reference, model.label_table, old, classifier, seed)
    if record is None:
        reference.bind_annotator(None, model.label_table, random_state=seed)
    else:
        try:
            reference.bind_annotator(record, model.label_table, random_state=seed)
        except ValueError as err:
            raise ValueError(f"{files.folder}: the annotator of this format-2 folder is damaged ({err})") from None
    return reference


class _Folder:
    """A model folder opened once, for one load: its files are opened through it, so all come from one save.

    A save replaces a model folder by swapping a new folder in and deleting the old one (:mod:`bedspace._atomic`).
    Opened by path one after the other, a model's files could come from two saves (the manifest of one, the vectors
    of the other). Opened relative to the folder's descriptor, they all come from the folder that was at the path
    when the load began; a file that the replacing save has already deleted is told as that, not as damage. Where
    files cannot be opened relative to a folder (Windows), they are opened by path.
    """

    def __init__(self, path: Path):
        self.path = path
        output = temporary_of(path)
        if output is not None:
            raise FileNotFoundError(
                f"not a bedspace model folder: {path} is the temporary folder of a save of {output} (being written "
                f"or removed, or left by a killed save); load {output}"
            )
        self._fd = None
        try:
            if _BY_FOLDER:
                self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._stat = os.fstat(self._fd)
            else:
                self._stat = os.stat(path)
                if not stat.S_ISDIR(self._stat.st_mode):
                    raise NotADirectoryError(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"not a bedspace model folder: {path} does not exist") from None
        except NotADirectoryError:
            raise FileNotFoundError(f"not a bedspace model folder: {path} is a file") from None

    def __enter__(self) -> _Folder:
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def open(self, name: str) -> int:
        """A descriptor of the regular file ``name`` of this folder.

        Raises
        ------
        ModelReplacedError
            ``name`` is gone because the path now leads elsewhere (a save replaced the folder) or nowhere.
        FileNotFoundError
            ``name`` is not a file of this folder.
        """
        # O_NONBLOCK: opening a FIFO planted under a file's name must not hang (reads of files ignore it)
        flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(name, flags, dir_fd=self._fd) if self._fd is not None else os.open(self.path / name, flags)
        except FileNotFoundError:
            self.check_unchanged()
            raise FileNotFoundError(name) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(name)
        return fd

    def check_unchanged(self) -> None:
        """Raise :class:`ModelReplacedError` when the path no longer leads to the folder opened."""
        try:
            now = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            raise ModelReplacedError(
                f"{self.path} was removed or moved while it was being read; load it again from where it is"
            ) from None
        if not os.path.samestat(now, self._stat):
            raise _replaced(self.path)


class _Files:
    """The files a manifest lists, all opened at load (from one folder), each checked when first read.

    Each is checked against its size and sha256 the first time it is read. Opened at load, a file read later (the
    region vectors, the sets' metadata) is still the one saved with the manifest, even if a save has replaced or
    deleted the folder since: a model answers from one save, whole. A file is closed once read (a memory map keeps
    what it maps).
    """

    def __init__(self, folder: _Folder, manifest: dict, required: dict):
        path = folder.path
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(role in files for role in required):
            raise ValueError(f"{path / MANIFEST}: 'files' must list {sorted(required)}")
        for role, entry in files.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"]:
                raise ValueError(f"{path / MANIFEST}: the entry of {role!r} in 'files' is malformed: {entry!r}")
        self.folder = path
        self._files = files
        self._checked: set[str] = set()
        self._fds: dict[str, int] = {}  # opened, not read yet
        self._ids: dict[str, tuple[int, int]] = {}  # device and inode of each, to know them again
        weakref.finalize(self, _close_all, self._fds)
        for role, entry in files.items():
            try:
                fd = self._fds[role] = folder.open(entry["name"])
            except ModelReplacedError:
                _close_all(self._fds)
                raise
            except FileNotFoundError:
                _close_all(self._fds)
                raise FileNotFoundError(f"{path}: model folder is incomplete, missing {entry['name']}") from None
            found = os.fstat(fd)
            self._ids[role] = (found.st_dev, found.st_ino)

    @cached_property
    def roles(self) -> set[str]:
        return set(self._files)

    def name(self, role: str) -> str:
        return self._files[role]["name"]

    def open(self, role: str) -> BinaryIO:
        """The file of ``role`` as opened at load, checked against the manifest (the first time it is read)."""
        path = self.folder / self.name(role)
        fd = self._fds.pop(role, None)
        handle = os.fdopen(fd, "rb") if fd is not None else self._reopen(role, path)
        try:
            if role not in self._checked:
                found = os.fstat(handle.fileno()).st_size, hashlib.file_digest(handle, "sha256").hexdigest()
                entry = self._files[role]
                if found != (entry.get("bytes"), entry.get("sha256")):
                    raise ValueError(
                        f"{path} does not match the checksum in {MANIFEST}: it was changed or damaged after the model "
                        "was saved; re-save the model, or restore the file"
                    )
                self._checked.add(role)
                handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    def _reopen(self, role: str, path: Path) -> BinaryIO:
        """A file read before, opened again by path: it must be the file opened at load."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 (returned open)
        except FileNotFoundError:
            handle = None
        if handle is None or (os.fstat(handle.fileno()).st_dev, os.fstat(handle.fileno()).st_ino) != self._ids[role]:
            if handle is not None:
                handle.close()
            raise _replaced(self.folder)
        return handle

    def read(self, role: str, reader):
        """``reader(handle)`` of the file of ``role`` (checked); whatever goes wrong, the error names the file."""
        with self.open(role) as handle:
            return _read(reader, self.folder / self.name(role), handle)

    def path(self, role: str) -> Path:
        """The file of ``role``, checked, for a reader that opens it by name (format 2)."""
        path = self.folder / self.name(role)
        with self.open(role) as handle:
            opened = os.fstat(handle.fileno())
        try:
            same = os.path.samestat(os.stat(path), opened)
        except FileNotFoundError:
            same = False
        if not same:
            raise _replaced(self.folder)
        return path

    def array(self, role: str, *, mmap: bool) -> np.ndarray:
        return self.read(role, _mapped_npy if mmap else lambda handle: np.load(handle, allow_pickle=False))

    def vectors(self, role: str, rows: int, dim, what: str, *, mmap: bool = False) -> np.ndarray:
        path = self.folder / self.name(role)
        vectors = self.array(role, mmap=mmap)
        if vectors.ndim != 2 or vectors.shape[0] != rows or (dim is not None and vectors.shape[1] != dim):
            raise ValueError(f"{path}: shape {vectors.shape}, expected ({rows}, {dim}) for {rows} {what}")
        if vectors.dtype.kind != "f":
            raise ValueError(f"{path}: vectors must be floating-point numbers, got {vectors.dtype}")
        return vectors


def _replaced(folder: Path) -> ModelReplacedError:
    return ModelReplacedError(f"{folder} was replaced by another save while it was being read; load it again")


def _close_all(fds: dict[str, int]) -> None:
    while fds:
        os.close(fds.popitem()[1])


def _mapped_npy(handle: BinaryIO) -> np.ndarray:
    """The array of an ``.npy`` file, memory-mapped from an open file (``np.load`` maps only files it opens by name)."""
    version = np.lib.format.read_magic(handle)
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in headers:
        raise ValueError(f"an .npy file of format {version}, which bedspace does not write")
    shape, fortran, dtype = headers[version](handle)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects, which bedspace never reads")
    if math.prod(shape) == 0:  # nothing to map (mmap refuses a length of 0)
        return np.zeros(shape, dtype)
    return np.memmap(handle, dtype=dtype, mode="r", shape=shape, order="F" if fortran else "C", offset=handle.tell())


def _manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's own content (all but this digest), as JSON with sorted keys."""
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=json_default).encode()).hexdigest()


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a bedspace model (what ``save(overwrite=True)`` may replace)."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _read_manifest(folder: _Folder) -> dict:
    path = folder.path / MANIFEST
    try:
        with os.fdopen(folder.open(MANIFEST), "rb") as handle:
            text = handle.read()
    except ModelReplacedError:
        raise
    except FileNotFoundError:
        raise FileNotFoundError(f"not a bedspace model folder (no {MANIFEST}): {folder.path}") from None
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a bedspace model (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format_version must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{folder.path} was written in model format {version} (by bedspace {manifest.get('bedspace_version')}); "
            f"this bedspace ({__version__}) reads formats 1 to {FORMAT_VERSION}: upgrade bedspace"
        )
    if version >= 3 and manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise ValueError(
            f"{path} does not match its own checksum (manifest_sha256): it was edited or damaged after the model "
            "was saved; re-save the model"
        )
    dim = manifest.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{path}: dim must be a whole number >= 1, got {dim!r}")
    return manifest


def _set_space(manifest: dict, folder: Path) -> SetSpace | None:
    """The set space ``model.json`` records (format 4; ``None`` before, and for a StarSpace-style model)."""
    record = manifest.get("set_space")
    if record is None:
        return None
    try:
        space = SetSpace.from_record(record)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / MANIFEST}: set_space is damaged ({err})") from None
    if space.dim != manifest.get("dim"):
        raise ValueError(f"{folder / MANIFEST}: set_space has dimension {space.dim}, the model {manifest.get('dim')}")
    return space


def _read(reader, path: Path, source=None):
    """Run ``reader(source)`` (default: ``reader(path)``); whatever goes wrong, the error names the file ``path``."""
    try:
        return reader(path if source is None else source)
    except (ValueError, OSError, EOFError, KeyError) as err:
        message = str(err)
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None


def _load_format_1(cls, folder: Path, manifest: dict):
    """Folders written by bedspace 0.1 (no checksums; sets as CSV)."""
    names = manifest.get("files") or {}
    missing = [n for n in names.values() if not (folder / n).exists()]
    if missing:
        raise FileNotFoundError(f"{folder}: model folder is incomplete, missing {missing}")
    universe = Universe.from_intervals(
        _read(read_intervals, folder / _V2_FILES["universe"]), name=str(manifest.get("universe_name", "universe")),
        chrom_sizes=manifest.get("chrom_sizes"),
    )  # fmt: skip
    labels = LabelTable.from_frame(pd.read_csv(folder / FILES["labels"], sep="\t", dtype=str, keep_default_na=False))
    dim = manifest.get("dim")

    def vectors(name: str, rows: int, what: str) -> np.ndarray:
        found = _read(lambda p: np.load(p, allow_pickle=False), folder / name)
        if found.ndim != 2 or found.shape[0] != rows or (dim is not None and found.shape[1] != dim):
            raise ValueError(f"{folder / name}: shape {found.shape}, expected ({rows}, {dim}) for {rows} {what}")
        return found

    reference = None
    if _V1_SET_FILES["sets"] in names.values():
        sets = _read(lambda p: pd.read_csv(p, index_col="name"), folder / _V1_SET_FILES["sets"])
        reference = ReferenceSets(sets, vectors(_V1_SET_FILES["set_vectors"], len(sets), "sets"))
    return cls(
        universe,
        vectors(FILES["region_vectors"], len(universe), "universe regions"),
        labels,
        vectors(FILES["label_vectors"], len(labels), "labels"),
        params=manifest.get("params") or {},
        loss=np.asarray(manifest.get("loss") or [], dtype=np.float64),
        reference=reference,
    )


def fingerprint(path: Path) -> dict:
    """Size and sha256 of a file."""
    with open(path, "rb") as handle:
        return {"bytes": os.fstat(handle.fileno()).st_size, "sha256": hashlib.file_digest(handle, "sha256").hexdigest()}
