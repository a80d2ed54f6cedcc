"""Tokenizing a collection out of core: chunks of sets streamed into an on-disk ``.h5ad``, resumable, on any executor.

:func:`tokenize_to_h5ad` is what ``bs.pp.tokenize(..., out=...)`` runs. Memory is bounded by the chunks being
tokenized (one chunk in this process, or a few per worker of an executor), never by the number of sets:

1. Sets are cut into chunks of ``chunk_size``. Each chunk is tokenized (here, with threads over its files, or as
   one task of a :class:`concurrent.futures.Executor`, e.g. a ``dask.distributed`` client's) and its CSR arrays
   and QC counts are saved as ``chunk_NNNNNN.npz`` in the progress folder ``OUT.partial/`` (each file written
   atomically), beside a ``manifest.json`` that fingerprints the job (set names and sources, universe,
   ``chunk_size``). On an executor the worker that tokenized a chunk writes its file itself and sends back only
   the chunk's per-set and per-region counts, so no tokens travel through the scheduler or this process; the
   progress folder must then be on a filesystem the workers share (checked: a chunk a worker wrote that this
   process cannot see is an error naming the folder). A rerun with the same fingerprint keeps the chunks
   already there: a killed run resumes.
2. The ``.h5ad`` is assembled under a temporary name: ``obs``, ``var``, ``uns`` written as anndata writes them
   (built by :meth:`TokenizedSets.annotations`, exactly as in memory), then ``X`` as anndata's CSR group,
   appended chunk by chunk into resizable datasets. The progress folder is removed once the file is on disk, and
   the file replaces ``OUT`` in one rename (:func:`~bedspace._outputs.output_file`).

The whole run holds the write lock of ``OUT``: a second run writing the same ``OUT`` stops at once, naming the
process that holds it, rather than sharing (and deleting) its progress folder. An existing ``OUT`` is replaced only
when it is an ``.h5ad`` bedspace wrote and ``overwrite=True``. A full disk is one error naming ``OUT``; the chunks
done are kept, and the same call resumes from them once there is room.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._atomic import atomic_path, atomic_write_bytes
from ._engine.native import SetSpace, embed_rows
from ._keys import TOKENIZE
from ._outputs import bedspace_h5ad, check_replace, hdf5_file, output_file, write_anndata
from ._overlap import UniverseIndex
from ._parallel import parallel_map
from ._params import whole_number
from ._sources import Source
from ._universe import TokenizedSets, Universe, _TokenizeOne, unusable_sets

#: Bump when the chunk files change: a progress folder of another format is started afresh.
FORMAT = 1
PARTIAL_SUFFIX = ".partial"
#: Values of ``X`` on disk: 0/1 need one byte (in memory ``X`` stays float32).
DATA_DTYPE = np.uint8
_H5_CHUNK = 1 << 18  # elements per HDF5 chunk of the X datasets


def executor_of(n_jobs):
    """``n_jobs`` as :func:`~bedspace._parallel.parallel_map` takes it.

    A ``dask.distributed.Client`` (anything with ``get_executor``) becomes its executor; ints, ``None`` and
    executors are returned as they are.
    """
    if n_jobs is None or isinstance(n_jobs, int | Executor):
        return n_jobs
    if hasattr(n_jobs, "get_executor"):
        return n_jobs.get_executor()
    raise TypeError(
        f"n_jobs must be None, an int, a concurrent.futures.Executor or a dask.distributed Client; "
        f"got {type(n_jobs).__name__}"
    )


def partial_folder(out: str | os.PathLike) -> Path:
    """The progress folder of an out-of-core run writing ``out``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def check_target(
    out: str | os.PathLike, chunk_size, inputs: Sequence[str | os.PathLike], *, overwrite: bool = False
) -> Path:
    """Refuse a bad ``chunk_size``, or an ``out`` that is a folder, one of the inputs, or a file not to replace.

    Each error names the path. Checked before any set is tokenized: a run of hours does not end in a refusal.
    """
    whole_number(chunk_size, "chunk_size", expected="a positive integer (sets per chunk)")
    out = Path(out)
    if out.is_dir():
        raise IsADirectoryError(f"out={str(out)!r} is a folder; name the .h5ad file to write, e.g. {out / 'x.h5ad'}")
    resolved = out.resolve()
    for path in inputs:
        if Path(path).resolve() == resolved:
            raise ValueError(f"out={str(out)!r} is one of the inputs ({path}); write the collection elsewhere")
    check_replace(out, overwrite=overwrite, own=bedspace_h5ad, option="overwrite=True")
    return out


@dataclass(frozen=True)
class _Chunk:
    """One chunk tokenized: its CSR arrays and QC counts, and the names of its unusable sets."""

    sets: TokenizedSets
    empty: list[str]
    foreign: list[str]
    misspelled: dict[str, tuple]  # set name -> its chromosomes the universe spells otherwise

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                names=np.array(self.sets.names, dtype=str),
                indptr=self.sets.indptr,
                indices=self.sets.indices,
                n_regions=self.sets.n_regions,
                n_in_universe=self.sets.n_in_universe,
                empty=np.array(self.empty, dtype=str),
                foreign=np.array(self.foreign, dtype=str),
                misspelled=np.array(json.dumps(self.misspelled)),
            )

    @classmethod
    def load(cls, path: Path) -> _Chunk:
        """A saved chunk; one of an earlier bedspace (without ``misspelled``) raises ``KeyError``, and is redone."""
        with np.load(path, allow_pickle=False) as f:
            sets = TokenizedSets(f["names"].tolist(), f["indptr"], f["indices"], f["n_regions"], f["n_in_universe"])
            misspelled = {name: tuple(map(tuple, found)) for name, found in json.loads(str(f["misspelled"])).items()}
            return cls(sets, f["empty"].tolist(), f["foreign"].tolist(), misspelled)


@dataclass(frozen=True)
class _Summary:
    """A saved chunk, as assembling the ``.h5ad`` needs it besides its tokens.

    Per-set counts (``chunk.sets`` without indices), unusable sets, and how many of the chunk's sets have each
    region (``regions`` with ``counts``).
    """

    chunk: _Chunk
    regions: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, done: _Chunk) -> _Summary:
        sets = done.sets
        per_region = np.bincount(sets.indices)
        regions = np.flatnonzero(per_region).astype(np.int32)
        light = TokenizedSets(sets.names, sets.indptr, np.zeros(0, np.int32), sets.n_regions, sets.n_in_universe)
        return cls(
            _Chunk(light, done.empty, done.foreign, done.misspelled), regions, per_region[regions].astype(np.int32)
        )


def _gather(chunk: Sequence[tuple[str, Source]], results) -> _Chunk:
    names = [name for name, _ in chunk]
    return _Chunk(TokenizedSets.from_results(names, results), *unusable_sets(names, results))


def _tokenize_chunk(index: UniverseIndex, chunk: Sequence[tuple[str, Source]], path: Path, n_jobs) -> _Summary:
    """Tokenize one chunk in this process (threads over its files) and save it at ``path``."""
    done = _gather(chunk, parallel_map(_TokenizeOne(index), list(chunk), n_jobs=n_jobs, desc="tokenizing"))
    done.save(path)
    return _Summary.of(done)


@dataclass(frozen=True)
class _TokenizeChunk:
    """Tokenize one chunk where an executor runs it, and save it there.

    A picklable callable: a worker gets the index with it, writes the chunk file and returns only its
    :class:`_Summary`.
    """

    index: UniverseIndex

    def __call__(self, chunk: Sequence[tuple[str, Source]], path: Path) -> _Summary:
        one = _TokenizeOne(self.index)
        done = _gather(chunk, [one(item) for item in chunk])
        done.save(path)
        return _Summary.of(done)


def _fingerprint(universe: Universe, named: Sequence[tuple[str, Source]], chunk_size: int) -> str:
    """What the chunks depend on: set names and sources (path, size, mtime; frame contents), universe, chunk size."""
    digest = hashlib.sha256(f"{FORMAT}\n{chunk_size}\n".encode())
    regions = universe.regions
    digest.update("\t".join(map(str, regions["chrom"].cat.categories)).encode())
    for array in (regions["chrom"].cat.codes.to_numpy(), regions["start"].to_numpy(), regions["end"].to_numpy()):
        digest.update(np.ascontiguousarray(array).tobytes())
    for name, source in named:
        if isinstance(source, pd.DataFrame):
            what = pd.util.hash_pandas_object(source, index=False).to_numpy().tobytes().hex()
        else:
            stat = Path(source).stat()
            what = f"{Path(source).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(f"\n{name}\t{what}".encode())
    return digest.hexdigest()


def _chunks(named: Sequence[tuple[str, Source]], chunk_size: int) -> list[list[tuple[str, Source]]]:
    return [list(named[i : i + chunk_size]) for i in range(0, len(named), chunk_size)]


def _prepare(folder: Path, fingerprint: str, n_chunks: int) -> list[Path]:
    """The progress folder, emptied unless it belongs to this job; the path of every chunk file."""
    manifest = folder / "manifest.json"
    record = {"format": FORMAT, "fingerprint": fingerprint, "n_chunks": n_chunks}
    if folder.is_dir():
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError):
            found = None
        if not (isinstance(found, dict) and found.get("format") == FORMAT and "fingerprint" in found):
            raise FileExistsError(
                f"{folder} is in the way: bedspace keeps the progress of this job there, and that folder is not one "
                "it made (no progress manifest of bedspace); move it away or choose another out="
            )
        if found != record:  # bedspace's own progress of another job on this output: start afresh
            shutil.rmtree(folder)
    if not folder.is_dir():
        folder.mkdir(parents=True)
        atomic_write_bytes(json.dumps(record).encode(), manifest)
    return [folder / f"chunk_{i:06d}.npz" for i in range(n_chunks)]


def _done(path: Path, chunk: Sequence[tuple[str, Source]]) -> _Chunk | None:
    """The chunk saved at ``path`` by an earlier run, if it is there and whole."""
    if not path.is_file():
        return None
    try:
        saved = _Chunk.load(path)
    except (OSError, ValueError, KeyError):
        return None
    return saved if saved.sets.names == [name for name, _ in chunk] else None


def _slots(executor: Executor) -> int:
    client = getattr(executor, "_client", None)  # dask.distributed's ClientExecutor
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return max(1, int(getattr(executor, "_max_workers", 1) or 1))


def as_done(executor: Executor, task, jobs: Sequence[tuple]) -> Iterator[tuple[int, object]]:
    """``task(*jobs[i])`` for every job on ``executor``; yields ``(i, result)`` as each finishes.

    At most two tasks per worker slot are in flight, so results (and the inputs of tasks not yet started) wait
    in this process only briefly; whatever is pending is cancelled if the caller stops or a task fails.
    """
    in_flight = 2 * _slots(executor)
    pending: dict = {}
    queue = iter(enumerate(jobs))
    try:
        while True:
            for i, job in queue:
                pending[executor.submit(task, *job)] = i
                if len(pending) >= in_flight:
                    break
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()
    finally:
        for future in pending:
            future.cancel()


def _run_chunks(
    index: UniverseIndex, todo: list[tuple[int, list, Path]], n_jobs: int | Executor | None
) -> Iterator[tuple[int, _Summary]]:
    """Tokenize the chunks ``todo`` (number, sets, file) into their files; yield each one's summary when done.

    With an executor the workers write the files, and chunks finish in any order.
    """
    if not isinstance(n_jobs, Executor):
        for number, chunk, path in todo:
            yield number, _tokenize_chunk(index, chunk, path, n_jobs)
        return
    for i, summary in as_done(n_jobs, _TokenizeChunk(index), [(chunk, path) for _, chunk, path in todo]):
        number, _, path = todo[i]
        if not path.is_file():
            raise RuntimeError(
                f"a worker saved chunk {path.name} in {path.parent}, but this process cannot see it there: with a "
                "cluster, write the collection (out=) on a filesystem every worker and this process share"
            )
        yield number, summary


@dataclass(frozen=True)
class _EmbedRows:
    """Embed rows ``start:stop`` of the collection in the ``.h5ad`` at ``path``, reading them there.

    A picklable callable: on a cluster the worker opens the file itself, so no tokens travel.
    """

    path: str

    def __call__(self, start: int, stop: int, region_vectors: np.ndarray, space: SetSpace | None = None) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            group = f["X"]
            indptr = np.asarray(group["indptr"][start : stop + 1], dtype=np.int64)
            indices = group["indices"][indptr[0] : indptr[-1]]
        return embed_rows(np.asarray(region_vectors), indptr - indptr[0], indices, space)


def embed_collection(
    tokens, filename, region_vectors: np.ndarray, *, n_jobs, chunk_tokens: int, space: SetSpace | None = None
) -> np.ndarray:
    """Set vectors of a collection's tokens (:class:`~bedspace.annotate.TokenMatrix`), a chunk of rows at a time.

    With an executor (a dask client) and tokens in an ``.h5ad`` file (``filename``), each chunk is embedded by a
    worker that reads it there; otherwise here, one chunk in memory at a time.
    """
    row_chunks = list(tokens.chunks(chunk_tokens))
    executor = executor_of(n_jobs)
    if isinstance(executor, Executor) and tokens.in_file:
        return embed_file_rows(filename, row_chunks, region_vectors, executor, space=space)
    vectors = np.zeros((tokens.n_sets, region_vectors.shape[1]), np.float32)
    for start, stop in row_chunks:
        chunk = tokens.csr(start, stop)
        vectors[start:stop] = embed_rows(region_vectors, chunk.indptr, chunk.indices, space)
    return vectors


def embed_file_rows(
    path: str | os.PathLike,
    row_chunks: Sequence[tuple[int, int]],
    region_vectors: np.ndarray,
    executor: Executor,
    *,
    space: SetSpace | None = None,
) -> np.ndarray:
    """Set vectors of a CSR ``.h5ad`` collection, each chunk of rows embedded by a worker of ``executor``.

    The region vectors go to each dask worker once (scattered; under a key of their own, as a scatter of equal
    data by content could reuse a key an earlier call is releasing); a plain executor gets them with every task.
    """
    client = getattr(executor, "_client", None)  # dask.distributed's ClientExecutor
    shared = region_vectors if client is None else client.scatter(region_vectors, broadcast=True, hash=False)
    n_sets = row_chunks[-1][1] if row_chunks else 0
    vectors = np.zeros((n_sets, region_vectors.shape[1]), np.float32)
    jobs = [(start, stop, shared, space) for start, stop in row_chunks]
    bar = tqdm(total=n_sets, desc="embedding", unit="set", disable=len(jobs) < 2)
    with bar:
        for i, result in as_done(executor, _EmbedRows(str(path)), jobs):
            start, stop = row_chunks[i]
            vectors[start:stop] = result
            bar.update(stop - start)
    return vectors


def tokenize_to_h5ad(
    universe: Universe,
    named: Sequence[tuple[str, Source]],
    out: str | os.PathLike,
    *,
    obs: pd.DataFrame | None,
    params: Mapping | None,
    chunk_size: int,
    n_jobs: int | Executor | None,
    overwrite: bool = False,
) -> None:
    """Tokenize ``named`` onto ``universe`` chunk by chunk into the ``.h5ad`` file ``out`` (see the module)."""
    out = Path(out)
    index = universe.index
    chunks = _chunks(named, chunk_size)
    folder = partial_folder(out)
    resume = f" (the chunks done are kept in {folder}: the same call resumes from them once there is room)"
    # timeout=0: a second run on OUT stops at once, naming the first; once let in, it would share (and finally
    # delete) the first one's progress folder
    with output_file(out, overwrite=overwrite, timeout=0, hint=resume) as tmp:
        paths = _prepare(folder, _fingerprint(universe, named, chunk_size), len(chunks))
        n_sets = np.zeros(len(universe), np.int64)
        summaries: list[_Chunk | None] = [None] * len(chunks)

        def add(number: int, summary: _Summary) -> None:
            n_sets[summary.regions] += summary.counts
            summaries[number] = summary.chunk

        todo = []
        for number, (path, chunk) in enumerate(zip(paths, chunks, strict=True)):
            saved = _done(path, chunk)
            if saved is None:
                todo.append((number, chunk, path))
            else:
                add(number, _Summary.of(saved))
        for number, summary in _run_chunks(index, todo, n_jobs):
            add(number, summary)
        whole = TokenizedSets(
            [name for s in summaries for name in s.sets.names],
            np.concatenate([[0], np.cumsum(np.concatenate([s.sets.n_tokens for s in summaries]))]).astype(np.int64),
            np.zeros(0, np.int32),
            np.concatenate([s.sets.n_regions for s in summaries]),
            np.concatenate([s.sets.n_in_universe for s in summaries]),
        )
        universe.warn_unusable(
            [n for s in summaries for n in s.empty],
            [n for s in summaries for n in s.foreign],
            {n: found for s in summaries for n, found in s.misspelled.items()},
        )
        obs, var, uns = whole.annotations(universe, obs=obs, params=params, n_sets=n_sets)
        with hdf5_file(tmp) as (f, check):
            write_anndata(f, ad.AnnData(obs=obs, var=var, uns={TOKENIZE: uns}), check=check)
            _write_x(f, whole.indptr, paths, len(universe), check=check)
        _fsync(tmp)
        # removed while OUT is locked (no second run can be reading the chunks) and its file is whole on disk
        shutil.rmtree(folder, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_x(f: h5py.File, indptr: np.ndarray, chunk_paths: Sequence[Path], n_regions: int, *, check) -> None:
    """Append ``X`` (anndata's CSR group encoding) to the open ``.h5ad`` ``f``, one chunk file at a time.

    ``check`` raises once the disk refused a write (:func:`~bedspace._outputs.hdf5_file`): no more chunk is read.
    """
    nnz = int(indptr[-1])
    group = f.create_group("X")
    group.attrs["encoding-type"] = "csr_matrix"
    group.attrs["encoding-version"] = "0.1.0"
    group.attrs["shape"] = np.array([indptr.size - 1, n_regions], dtype=np.int64)
    group.create_dataset("indptr", data=indptr.astype(np.int64), maxshape=(None,))
    datasets = {
        name: group.create_dataset(
            name, shape=(0,), dtype=dtype, maxshape=(None,), chunks=(max(1, min(_H5_CHUNK, nnz)),)
        )
        for name, dtype in (("data", DATA_DTYPE), ("indices", np.int32))
    }
    start = 0
    for chunk_path in chunk_paths:
        indices = _Chunk.load(chunk_path).sets.indices.astype(np.int32, copy=False)
        stop = start + indices.size
        for name, values in (("indices", indices), ("data", np.ones(indices.size, DATA_DTYPE))):
            datasets[name].resize((stop,))
            datasets[name][start:stop] = values
        start = stop
        check()
    if start != nnz:
        raise RuntimeError(f"the chunk files of {chunk_paths[0].parent} hold {start} tokens, not the {nnz} counted")
