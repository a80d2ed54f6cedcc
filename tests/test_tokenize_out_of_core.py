"""``bs.pp.tokenize(..., out=...)``: out of core, chunk by chunk into an ``.h5ad``; resumable; on a dask cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

import bedspace as bs

try:
    from anndata.io import read_elem_lazy
except ImportError:  # anndata < 0.12
    from anndata.experimental import read_elem_lazy
from bedspace import _ondisk
from bedspace._universe import Universe
from bedspace.annotate._tokens import row_chunks as _row_chunks


@pytest.fixture(scope="module")
def insulators():
    return bs.datasets.insulators()


@pytest.fixture(scope="module")
def in_memory(insulators, tmp_path_factory):
    """The in-memory result, as it comes back from an ``.h5ad``."""
    adata = bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata)
    path = tmp_path_factory.mktemp("in_memory") / "in_memory.h5ad"
    adata.write_h5ad(path)
    return path


def assert_same_collection(path, expected_path):
    """The file at ``path`` holds what anndata wrote for the in-memory result (``X`` as uint8, indptr int64)."""
    got, expected = ad.read_h5ad(path), ad.read_h5ad(expected_path)
    assert got.shape == expected.shape
    assert got.X.format == "csr" and got.X.dtype == np.uint8
    assert np.array_equal(got.X.indptr, expected.X.indptr)
    assert np.array_equal(got.X.indices, expected.X.indices)
    assert np.all(got.X.data == 1) and np.all(expected.X.data == 1)
    pd.testing.assert_frame_equal(got.obs, expected.obs)
    pd.testing.assert_frame_equal(got.var, expected.var)
    assert _plain(got.uns) == _plain(expected.uns)
    with h5py.File(path) as f, h5py.File(expected_path) as g:
        assert set(f) == set(g)
        assert dict(f.attrs) == dict(g.attrs)
        for key in ("encoding-type", "encoding-version"):
            assert f["X"].attrs[key] == g["X"].attrs[key]
        assert list(f["X"].attrs["shape"]) == list(g["X"].attrs["shape"])
        assert (f["X/indptr"].dtype, f["X/indices"].dtype, f["X/data"].dtype) == (np.int64, np.int32, np.uint8)
        assert f["X/data"].maxshape == (None,) and f["X/indices"].maxshape == (None,)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@pytest.mark.parametrize("chunk_size", [1, 3, 512])
def test_same_as_in_memory(insulators, in_memory, tmp_path, chunk_size):
    out = tmp_path / "collection.h5ad"
    backed = bs.pp.tokenize(
        insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=chunk_size
    )
    assert backed.isbacked and backed.filename == out
    assert_same_collection(out, in_memory)
    assert not _ondisk.partial_folder(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection.h5ad"]  # no lock or temporary file left


def test_backed_and_lazy_reading(insulators, in_memory, tmp_path):
    out = tmp_path / "collection.h5ad"
    backed = bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata, out=out)
    expected = ad.read_h5ad(in_memory)
    assert np.array_equal(backed.X[2:6].toarray(), expected.X[2:6].toarray())
    assert backed.obs["n_tokens"].tolist() == expected.obs["n_tokens"].tolist()
    backed.file.close()
    with h5py.File(out) as f:
        lazy = read_elem_lazy(f["X"])
        assert lazy.shape == expected.shape
        assert np.array_equal(lazy[:3].compute().toarray(), expected.X[:3].toarray())


def test_same_as_in_memory_on_real_hg19_files(hg19, sample_files, tmp_path):
    universe = Universe.load(hg19.universe)
    expected = tmp_path / "in_memory.h5ad"
    bs.pp.tokenize(sample_files, universe).write_h5ad(expected)
    out = tmp_path / "collection.h5ad"
    bs.pp.tokenize(sample_files, universe, out=out, chunk_size=2)
    assert_same_collection(out, expected)


def test_stale_progress_is_discarded(insulators, in_memory, tmp_path):
    out = tmp_path / "collection.h5ad"
    partial = _ondisk.partial_folder(out)
    partial.mkdir()
    (partial / "manifest.json").write_text('{"format": 1, "fingerprint": "another job", "n_chunks": 3}')
    (partial / "chunk_000000.npz").write_bytes(b"not a chunk")
    bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=3)
    assert_same_collection(out, in_memory)
    assert not partial.exists()


@pytest.mark.parametrize("manifest", [None, "not json", '{"notes": "mine"}'])
def test_a_folder_bedspace_did_not_make_is_never_deleted(insulators, tmp_path, manifest):
    """A user's ``OUT.partial/`` (no progress manifest of bedspace) is in the way: named, and left as it is."""
    out = tmp_path / "collection.h5ad"
    partial = _ondisk.partial_folder(out)
    partial.mkdir()
    (partial / "precious.txt").write_text("years of work")
    if manifest is not None:
        (partial / "manifest.json").write_text(manifest)
    with pytest.raises(FileExistsError, match=r"collection.h5ad.partial is in the way.*not one it made"):
        bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=3)
    assert (partial / "precious.txt").read_text() == "years of work"
    assert not out.exists()


def test_warnings_as_in_memory(insulators, tmp_path):
    frames = {"empty": pd.DataFrame({"chrom": [], "start": [], "end": []}), "foreign": pd.DataFrame(
        {"chrom": ["1"], "start": [0], "end": [100]})}  # fmt: skip
    with pytest.warns(bs.BEDSpaceWarning) as in_memory:
        bs.pp.tokenize(frames, insulators.universe)
    with pytest.warns(bs.BEDSpaceWarning) as out_of_core:
        bs.pp.tokenize(frames, insulators.universe, out=tmp_path / "x.h5ad", chunk_size=1)
    ours = [w for w in out_of_core if w.category is bs.BEDSpaceWarning]
    assert [str(w.message) for w in ours] == [str(w.message) for w in in_memory if w.category is bs.BEDSpaceWarning]
    assert {w.filename for w in ours} == {__file__}  # the warnings point at the caller


@pytest.mark.parametrize("chunk_size", [0, -3, 1.5, True, "8"])
def test_bad_chunk_size(insulators, tmp_path, chunk_size):
    with pytest.raises(ValueError, match=rf"chunk_size .*{chunk_size!r}"):
        bs.pp.tokenize(insulators.beds, insulators.universe, out=tmp_path / "x.h5ad", chunk_size=chunk_size)


def test_out_is_a_folder(insulators, tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        bs.pp.tokenize(insulators.beds, insulators.universe, out=tmp_path)


def test_out_is_an_input(insulators, tmp_path):
    bed = tmp_path / "set.bed"
    bed.write_text("chr2L\t0\t10000\n")
    with pytest.raises(ValueError, match=r"out=.*set\.bed.* is one of the inputs"):
        bs.pp.tokenize([bed], insulators.universe, out=bed)
    assert bed.read_text() == "chr2L\t0\t10000\n"
    universe = tmp_path / "universe.bed"
    universe.write_text("chr2L\t0\t10000\n")
    with pytest.raises(ValueError, match=r"universe\.bed"):
        bs.pp.tokenize([bed], universe, out=universe)


def test_memory_bounded_by_a_chunk(insulators, tmp_path):
    """Peak memory (tracemalloc) grows with the number of sets in memory, not out of core (chunks of 2)."""
    universe = Universe.load(insulators.universe)
    assert universe.index.non_overlapping  # the index is built once, outside the measures
    beds = sorted(insulators.beds.glob("*.bed.gz"))

    def peak(n, **kwargs):
        sets = {f"set{i}": beds[i % len(beds)] for i in range(n)}
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        try:
            adata = bs.pp.tokenize(sets, universe, n_jobs=1, **kwargs)
            return tracemalloc.get_traced_memory()[1] - base, adata
        finally:
            tracemalloc.stop()

    peak(4)  # warm up (lazy imports)
    peak(4, out=tmp_path / "warm.h5ad", chunk_size=2)
    _, adata = peak(400)
    x_bytes = adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes
    in_memory = peak(400)[0]
    small, large = (
        peak(4, out=tmp_path / "small.h5ad", chunk_size=2)[0],
        peak(400, out=tmp_path / "large.h5ad", chunk_size=2)[0],
    )
    assert in_memory > x_bytes
    assert large - small < 0.1 * x_bytes, (small, large, x_bytes)
    assert large < 0.5 * in_memory, (large, in_memory)


KILLED_RUN = """
import sys, warnings
warnings.simplefilter("ignore")
import bedspace as bs
sets = sys.argv[3:]
bs.pp.tokenize(sets, sys.argv[1], out=sys.argv[2], chunk_size=1, n_jobs=1)
"""


def test_resumes_after_being_killed(hg19, hg19_metadata, tmp_path, monkeypatch):
    names = hg19_metadata.loc[hg19_metadata["collection"] == "encode_awg_dnase", "file_name"].iloc[:10]
    files = [str(hg19.beds / name) for name in names]
    out = tmp_path / "collection.h5ad"
    partial = _ondisk.partial_folder(out)
    run = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(hg19.universe), str(out), *files],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(partial.glob("chunk_*.npz"))) < 2:
            assert run.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no chunk written in 120 s"
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.kill()
        run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert not out.exists()
    done = len(list(partial.glob("chunk_*.npz")))
    assert 2 <= done < len(files)

    computed = []
    tokenize_chunk = _ondisk._tokenize_chunk
    monkeypatch.setattr(_ondisk, "_tokenize_chunk", lambda *a: computed.append(a[1]) or tokenize_chunk(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.pp.tokenize(files, hg19.universe, out=out, chunk_size=1, n_jobs=1)
    assert len(computed) == len(files) - done  # the chunks already written were kept
    assert not partial.exists()
    expected = tmp_path / "in_memory.h5ad"
    bs.pp.tokenize(files, hg19.universe).write_h5ad(expected)
    assert_same_collection(out, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection.h5ad", "in_memory.h5ad"]


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, death_timeout=60
        ) as cluster,
        distributed.Client(cluster, timeout=60) as client,
    ):
        yield client


@pytest.mark.parametrize("executor", [False, True], ids=["client", "client.get_executor()"])
def test_dask_cluster(insulators, in_memory, tmp_path, dask_client, executor):
    out = tmp_path / "collection.h5ad"
    n_jobs = dask_client.get_executor() if executor else dask_client
    bs.pp.tokenize(
        insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=3, n_jobs=n_jobs
    )
    assert_same_collection(out, in_memory)
    # the cluster is still whole: two worker processes
    assert len(dask_client.nthreads()) == 2


def test_dask_cluster_embeds_in_the_default_space_as_this_process_does(insulators, tmp_path, dask_client):
    """The default space's set vectors (bias, blocks and their shares) are made on the workers as they are here."""
    out = tmp_path / "collection.h5ad"
    bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=3)
    trained = ad.read_h5ad(out)
    bs.tl.train(trained, labels=["target", "cell_type"])
    assert trained.uns["bedspace"]["params"]["space"] == "annotator"
    model = bs.BEDSpaceModel.from_anndata(trained)
    on_workers = model.embed(ad.read_h5ad(out, backed="r"), n_jobs=dask_client, chunk_tokens=2_000)
    np.testing.assert_array_equal(on_workers, model.embed(ad.read_h5ad(out)))
    assert np.linalg.norm(on_workers, axis=1) == pytest.approx(1.0, rel=1e-5)


def test_dask_cluster_on_real_hg19_files(hg19, sample_files, tmp_path, dask_client):
    expected = tmp_path / "in_memory.h5ad"
    bs.pp.tokenize(sample_files, hg19.universe).write_h5ad(expected)
    out = tmp_path / "collection.h5ad"
    bs.pp.tokenize(sample_files, hg19.universe, out=out, chunk_size=2, n_jobs=dask_client)
    assert_same_collection(out, expected)


def test_dask_workers_write_their_own_chunks(insulators, in_memory, tmp_path, dask_client, monkeypatch):
    """On a cluster no chunk is written by the calling process: its own `_Chunk.save` is broken here, the
    workers' (other processes) is not."""

    def refuse(self, path):
        raise AssertionError(f"the calling process wrote {path}")

    monkeypatch.setattr(_ondisk._Chunk, "save", refuse)
    out = tmp_path / "collection.h5ad"
    bs.pp.tokenize(
        insulators.beds, insulators.universe, metadata=insulators.metadata, out=out, chunk_size=3, n_jobs=dask_client
    )
    assert_same_collection(out, in_memory)


class _WorkerElsewhere(ThreadPoolExecutor):
    """An executor whose workers write to a disk this process does not see: each chunk file vanishes."""

    def submit(self, fn, /, *args, **kwargs):
        def run():
            result = fn(*args, **kwargs)
            args[1].unlink()
            return result

        return super().submit(run)


def test_chunks_out_of_sight_are_an_error(insulators, tmp_path):
    out = tmp_path / "collection.h5ad"
    with _WorkerElsewhere(2) as executor, pytest.raises(RuntimeError, match="filesystem every worker"):
        bs.pp.tokenize(insulators.beds, insulators.universe, out=out, chunk_size=3, n_jobs=executor)
    assert not out.exists()


def test_dask_workers_embed_a_backed_collection(insulators, tmp_path, dask_client, monkeypatch):
    """Each worker reads its chunk of rows from the file and embeds it; the vectors are those embedded here."""
    reference = bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata)
    bs.tl.train(reference, labels=["target"], dim=8, epochs=2, n_threads=1, random_state=0)
    out = tmp_path / "collection.h5ad"
    backed = bs.pp.tokenize(insulators.beds, insulators.universe, metadata=insulators.metadata, out=out)
    model = bs.BEDSpaceModel.from_anndata(reference)
    here = model.embed(backed, chunk_tokens=2000)

    def refuse(*args, **kwargs):
        raise AssertionError("the calling process embedded rows of the file")

    # neither this process's chunk loop nor a task run here: only the worker processes can embed
    monkeypatch.setattr(_ondisk._EmbedRows, "__call__", refuse)
    monkeypatch.setattr(bs.BEDSpaceModel, "embed_rows", refuse)
    assert len(_row_chunks(np.asarray(backed.X.group["indptr"][...]), 2000)) > 2  # several tasks, in any order
    on_workers = model.embed(backed, n_jobs=dask_client, chunk_tokens=2000)
    # the same sums, by a kernel each worker process compiled for itself: equal up to float32 round-off (a CI run
    # saw 1-ulp differences in 8 of 64 numbers)
    np.testing.assert_allclose(on_workers, here, rtol=1e-6, atol=1e-7)
    bs.tl.embed(backed, reference, n_jobs=dask_client)
    np.testing.assert_allclose(backed.obsm["X_bedspace"], reference.obsm["X_bedspace"], rtol=1e-6, atol=1e-7)
