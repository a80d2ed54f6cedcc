"""Output files: which existing file bedspace may replace, and a full disk as one clear error.

Every output file of the command line and of ``pp.tokenize(out=...)`` is written through :func:`output_file`:

* **Nothing is replaced by mistake.** An existing file is replaced only when ``overwrite`` is given *and* it is
  bedspace's own output (:func:`bedspace_h5ad`: an HDF5 file holding ``uns/bedspace/version``, which every
  ``.h5ad`` bedspace writes records; or what the caller's ``own`` accepts). A text file, a pickle, someone
  else's ``.h5ad`` is never replaced, whatever ``overwrite`` says: the model folders' rule
  (:func:`~bedspace._atomic.atomic_folder` with ``replaceable``), for files. The check is made again under the
  output's write lock, just before writing: a file that appeared meanwhile is not replaced either.
* **A full disk is one error naming the output** (``no space left on device writing OUT``), and the output is
  left as it was (:mod:`bedspace._atomic` removes the temporary file). HDF5 files are written through
  :func:`hdf5_file`, whose file object keeps a refused write from the HDF5 library: HDF5 cannot close a file whose
  write failed, and its exit handler then crashes the process (a segfault after the traceback).
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ._atomic import NotReplaceableError, atomic_path

if TYPE_CHECKING:
    import anndata as ad
    import h5py

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: What a write that found no room says, by errno.
_NO_ROOM = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (past the file size limit, `ulimit -f`, or the file system's largest file)",
}


def bedspace_h5ad(path: Path, *, holding: str = "version") -> bool:
    """Whether ``path`` is an ``.h5ad`` file bedspace wrote: HDF5 with ``uns/bedspace/<holding>``.

    Only the file's first bytes and its group tree are read (no array), and anything unreadable is not bedspace's.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                return False
        import h5py

        with h5py.File(path, "r") as f:
            return f"uns/bedspace/{holding}" in f
    except Exception:  # a damaged HDF5 file raises many kinds: it is not an output bedspace would replace
        return False


def check_replace(path: Path, *, overwrite: bool, own: Callable[[Path], bool], option: str) -> None:
    """Refuse an existing ``path`` unless ``overwrite`` and ``own(path)``, naming how to go on.

    Parameters
    ----------
    path
        The output.
    overwrite
        Whether the caller was told to replace an output.
    own
        Whether an existing file at ``path`` is an output of the kind being written (replaceable with
        ``overwrite``).
    option
        How the caller says ``overwrite`` (``--overwrite``, ``overwrite=True``), for the message.

    Raises
    ------
    NotReplaceableError
        ``path`` is not bedspace's own output (a subclass of :class:`FileExistsError`).
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    IsADirectoryError
        ``path`` is a folder.
    """
    if not os.path.lexists(path):
        return
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the name of a file to write")
    if not own(path):
        raise NotReplaceableError(
            f"refusing to replace {path}: it is not an output of bedspace of this kind, so {option} does not "
            "delete it; choose another name, or remove the file yourself"
        )
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass {option} to replace it")


def check_replace_folder(path: Path, *, overwrite: bool, own: Callable[[Path], bool], option: str) -> None:
    """Before the work: refuse an existing folder ``path`` unless ``overwrite`` and ``own(path)`` (a model folder).

    The writing checks again when it swaps the folder in (:func:`bedspace._atomic.atomic_folder`); this check
    spares the minutes or hours of work that would come before that refusal.

    Raises
    ------
    NotADirectoryError
        ``path`` is a file.
    NotReplaceableError
        ``path`` is not a folder of the kind being written (a subclass of :class:`FileExistsError`).
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; give the name of a folder to write the model into")
    if not own(path):
        raise NotReplaceableError(
            f"refusing to replace {path}: it is not a bedspace model folder, so {option} does not delete it; "
            "choose another name, or remove the folder yourself"
        )
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass {option} to replace it")


def no_room(err: BaseException, path: Path, *, hint: str = "") -> OSError | None:
    """A full disk (or quota, or file size limit) anywhere in ``err``'s chain, as one error naming ``path``."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _NO_ROOM:
            clean = OSError(f"{_NO_ROOM[err.errno]} writing {path}; it is as it was before{hint}")
            clean.errno = err.errno  # kept for callers, out of the message ("[Errno 28] ...")
            return clean
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def naming_full_disk(path: Path, *, hint: str = "") -> Iterator[None]:
    """Turn a full disk met inside the block into one :class:`OSError` naming ``path`` (see :func:`no_room`)."""
    try:
        yield
    except Exception as err:
        clean = no_room(err, path, hint=hint)
        if clean is None:
            raise
        raise clean from None


@contextmanager
def output_file(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    own: Callable[[Path], bool] = bedspace_h5ad,
    option: str = "overwrite=True",
    timeout: float | None = None,
    hint: str = "",
) -> Iterator[Path]:
    """Yield a temporary file that replaces ``path`` when the block ends without an error (never half a file).

    ``path`` is checked (:func:`check_replace`) while its write lock is held; a full disk is one error naming it
    (and adding ``hint``). ``timeout`` is how long to wait for another writer of ``path`` (``0``: fail at once,
    naming its process).
    """
    path = Path(path)
    with naming_full_disk(path, hint=hint), atomic_path(path, timeout=timeout) as tmp:
        check_replace(path, overwrite=overwrite, own=own, option=option)
        yield tmp


class _Guarded(io.RawIOBase):
    """A file for the HDF5 library that keeps the library whole when the disk fills up.

    HDF5 must never see a failed write: given one, it cannot close the objects it has open, and its exit handler
    then crashes the process (a segfault after the traceback). So the first write the disk refuses is kept in
    memory with its :class:`OSError` (:attr:`error`), as is every write after it, each reported as done; reads
    see them, and the library goes on and closes its file as usual. The caller stops writing at the next
    :meth:`check` (between elements: what is kept is what one element and the closing flushes write) and the
    file, incomplete, goes with the temporary file it was written to. Reads past the end give zeros, as those of
    HDF5's own ``sec2`` driver.
    """

    def __init__(self, raw: io.FileIO):
        super().__init__()
        self._raw = raw
        self.error: OSError | None = None
        self._kept: list[tuple[int, bytes]] = []  # (offset, data) written after the disk filled, in order

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        start = self._raw.tell()
        done = 0
        while done < view.nbytes and (n := self._raw.readinto(view[done:])):
            done += n
        view[done:] = bytes(view.nbytes - done)
        for offset, data in self._kept:
            lo, hi = max(offset, start), min(offset + len(data), start + view.nbytes)
            if lo < hi:
                view[lo - start : hi - start] = data[lo - offset : hi - offset]
        self._raw.seek(start + view.nbytes)
        return view.nbytes

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        start = self._raw.tell()
        if self.error is None:
            try:
                done = 0
                while done < view.nbytes:  # a write may be short (2 GB at most at once; a disk that fills up)
                    written = self._raw.write(view[done:])
                    if not written:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += written
                return done
            except OSError as err:
                self.error = err
        self._keep(start, view)
        return view.nbytes

    def _keep(self, start: int, view: memoryview) -> None:
        self._kept.append((start, bytes(view)))
        self._raw.seek(start + view.nbytes)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._raw.truncate(size)
            except OSError as err:  # extending the file past a size limit
                self.error = err
        return self._raw.tell() if size is None else size

    def flush(self) -> None:
        if self.error is None and not self._raw.closed:
            self._raw.flush()

    def check(self) -> None:
        """Raise the error of the write the disk refused, if one was."""
        if self.error is not None:
            raise self.error


@contextmanager
def hdf5_file(path: Path) -> Iterator[tuple[h5py.File, Callable[[], None]]]:
    """A new HDF5 file at ``path``, open for writing, and ``check``, which raises if the disk refused a write.

    The HDF5 library writes through :class:`_Guarded` (h5py's file-object driver), never to ``path`` directly.
    Call ``check()`` between the parts of a long write, so that it stops soon after the disk fills up; the error
    is raised in any case once the file is closed.
    """
    import h5py

    with open(path, "w+b", buffering=0) as raw:
        guarded = _Guarded(raw)
        try:
            with h5py.File(guarded, "w") as f:
                yield f, guarded.check
        except Exception:
            guarded.check()  # a full disk is the cause of what followed it
            raise
        guarded.check()


def write_h5ad(adata: ad.AnnData, path: Path) -> None:
    """Write ``adata`` (in memory) to ``path`` as :meth:`anndata.AnnData.write_h5ad` does, through :func:`hdf5_file`."""
    with hdf5_file(path) as (f, check):
        write_anndata(f, adata, check=check)


def write_anndata(f: h5py.File, adata: ad.AnnData, *, check: Callable[[], None]) -> None:
    """The groups :meth:`anndata.AnnData.write_h5ad` writes for an in-memory AnnData, into the open file ``f``.

    ``check`` is called after each group (see :func:`hdf5_file`).
    """
    from anndata.io import write_elem

    adata.strings_to_categoricals()  # as write_h5ad does
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    groups = {"X": adata.X, "obs": adata.obs, "var": adata.var}
    groups |= {key: dict(getattr(adata, key)) for key in ("uns", "obsm", "varm", "obsp", "varp")}
    groups["layers"] = {k: v for k, v in adata.layers.items() if k is not None}  # anndata 0.13: X is layers[None]
    groups["raw"] = adata.raw
    for key, value in groups.items():
        if value is not None:
            write_elem(f, key, value)
            check()
