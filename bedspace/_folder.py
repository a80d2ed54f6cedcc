"""Model folders: a trained model saved as a self-describing, checksummed folder (no pickle), opened in a blink.

Format 3 (written by :func:`save`)::

    model.json            format, bedspace version, dim, counts, parameters, universe (name, chromosome sizes),
                          loss, and the size and sha256 of every other file
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
it needs.

Format 2 (``reference.h5ad`` with the tokens, the annotator in ``model.json``, ``classifier.npz``) and format 1
(bedspace 0.1: no checksums, sets as CSV) are read too.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_folder
from ._formats.bed import read_intervals
from ._labels import LabelTable
from ._legacy import classifier_of_arrays, legacy_record
from ._plain import json_default
from ._quiet import quiet_anndata_io
from ._reference import ReferenceSets
from ._universe import Universe
from ._version import __version__
from .annotate import RegionAnnotator, TokenMatrix
from .annotate._estimator import flatten, unflatten
from .annotate._tokens import CHUNK_TOKENS, CodedTokens

FORMAT = "bedspace-model"
FORMAT_VERSION = 3
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


def save(model, folder: Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` into ``folder`` (format 3), atomically: a crash leaves no half-written folder."""
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

            with quiet_anndata_io():
                ad.AnnData(obs=reference.metadata.copy()).write_h5ad(tmp / SET_FILES["sets"])
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


def load(cls, folder: Path):
    """Open the model folder ``folder`` (formats 1 to 3) as a ``cls`` (:class:`~bedspace.BEDSpaceModel`)."""
    manifest = _read_manifest(folder)
    version = manifest["format_version"]
    if version == 1:
        return _load_format_1(cls, folder, manifest)
    files = _Files(folder, manifest, FILES if version == 3 else {**FILES, "universe": _V2_FILES["universe"]})
    dim = manifest.get("dim")
    info = manifest.get("universe") or {}
    name, chrom_sizes = str(info.get("name", "universe")), info.get("chrom_sizes")
    if version == 3:
        universe = _read(lambda p: _read_universe(p, name, chrom_sizes), files.path("universe"))
    else:
        universe = Universe.from_intervals(
            _read(read_intervals, files.path("universe")), name=name, chrom_sizes=chrom_sizes
        )
    labels = _read(
        lambda p: LabelTable.from_frame(pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)),
        files.path("labels"),
    )
    model = cls(
        universe,
        lambda: files.vectors("region_vectors", len(universe), dim, "universe regions", mmap=version == 3),
        labels,
        files.vectors("label_vectors", len(labels), dim, "labels"),
        params=manifest.get("params") or {},
        loss=np.asarray(manifest.get("loss") or [], dtype=np.float64),
        provenance=manifest.get("provenance") or {},
    )
    reference = _reference_v3(files, manifest, dim) if version == 3 else _reference_v2(files, manifest, dim, model)
    if reference is not None:
        model._attach(reference)
    return model


def _read_universe(path: Path, name: str, chrom_sizes) -> Universe:
    with np.load(path, allow_pickle=False) as arrays:
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
    if "annotator" in files.roles and tokens is not None:
        path = files.path("annotator")
        record = _read(lambda p: unflatten(dict(np.load(p, allow_pickle=False))), path)
        try:
            # the tokens' and the annotator's files are checked against their checksums: saved together
            annotator = RegionAnnotator.from_record(record, tokens, check=False)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return ReferenceSets(
        lambda: _read(_read_obs, files.path("sets")), vectors, tokens, annotator=annotator, n_sets=n_sets
    )


def _read_obs(path: Path) -> pd.DataFrame:
    import anndata as ad

    try:
        with quiet_anndata_io():
            return ad.read_h5ad(path).obs
    except Exception as err:  # h5py and anndata raise many kinds; the user needs the file's name
        raise ValueError(f"not a readable metadata file ({type(err).__name__}: {err})") from None


def _reference_v2(files: _Files, manifest: dict, dim, model) -> ReferenceSets | None:
    """A format-2 reference (``reference.h5ad`` with the tokens) and its annotator, as format 3 holds them."""
    if "reference" not in files.roles:
        return None
    import anndata as ad
    import scipy.sparse as sp

    path = files.path("reference")
    try:
        with quiet_anndata_io():
            adata = ad.read_h5ad(path)
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
        classifier = _read(
            lambda p: classifier_of_arrays(dict(np.load(p, allow_pickle=False))), files.path("classifier")
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


class _Files:
    """The files a manifest lists, each checked against its size and sha256 the first time it is read."""

    def __init__(self, folder: Path, manifest: dict, required: dict):
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(role in files for role in required):
            raise ValueError(f"{folder / MANIFEST}: 'files' must list {sorted(required)}")
        for role, entry in files.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"]:
                raise ValueError(f"{folder / MANIFEST}: the entry of {role!r} in 'files' is malformed: {entry!r}")
            if not (folder / entry["name"]).is_file():
                raise FileNotFoundError(f"{folder}: model folder is incomplete, missing {entry['name']}")
        self.folder = folder
        self._files = files
        self._checked: set[str] = set()

    @cached_property
    def roles(self) -> set[str]:
        return set(self._files)

    def path(self, role: str) -> Path:
        """The file of ``role``, checked against the manifest (once)."""
        entry = self._files[role]
        path = self.folder / entry["name"]
        if role not in self._checked:
            if fingerprint(path) != {"bytes": entry.get("bytes"), "sha256": entry.get("sha256")}:
                raise ValueError(
                    f"{path} does not match the checksum in {MANIFEST}: it was changed or damaged after the model was "
                    "saved; re-save the model, or restore the file"
                )
            self._checked.add(role)
        return path

    def array(self, role: str, *, mmap: bool) -> np.ndarray:
        return _read(lambda p: np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None), self.path(role))

    def vectors(self, role: str, rows: int, dim, what: str, *, mmap: bool = False) -> np.ndarray:
        path = self.folder / self._files[role]["name"]
        vectors = self.array(role, mmap=mmap)
        if vectors.ndim != 2 or vectors.shape[0] != rows or (dim is not None and vectors.shape[1] != dim):
            raise ValueError(f"{path}: shape {vectors.shape}, expected ({rows}, {dim}) for {rows} {what}")
        if vectors.dtype.kind != "f":
            raise ValueError(f"{path}: vectors must be floating-point numbers, got {vectors.dtype}")
        return vectors


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


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise FileNotFoundError(
            f"not a bedspace model folder: {folder} {'is a file' if folder.exists() else 'does not exist'}"
        )
    if not path.exists():
        raise FileNotFoundError(f"not a bedspace model folder (no {MANIFEST}): {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
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
            f"{folder} was written in model format {version} (by bedspace {manifest.get('bedspace_version')}); "
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


def _read(reader, path: Path):
    """Run ``reader(path)``; whatever goes wrong, the error names the file."""
    try:
        return reader(path)
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
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
