"""Atomic writes of files and folders: no half-written output, no lost output, no output lost to a concurrent writer.

Every guarantee holds for writers that go through this module (all of bedspace); POSIX file systems.

* **All or nothing.** Output is written under a hidden name beside its target (``.NAME.<random>.tmp``, on the
  same file system) and renamed into place only when the writing code returns without an error. An error or a
  crash leaves the earlier output, or nothing, never part of a file or folder.
* **Durable.** The output is flushed to disk (``fsync``) before it is renamed into place, and the rename after,
  so that a power cut too leaves the earlier output or the whole new one. ``durable=False`` skips this for
  outputs that are cheap to make again (each ``fsync`` costs milliseconds); a crash of the process is then still
  all or nothing.
* **Ordinary permissions.** Files get ``0666 & ~umask`` and folders ``0777 & ~umask`` (as ``open`` and
  ``mkdir`` give), not the ``0600``/``0700`` of :func:`tempfile.mkstemp`/:func:`tempfile.mkdtemp`.
* **One writer at a time.** A writer holds an exclusive lock (``fcntl.flock``) on ``.NAME.lock`` beside the
  output for the whole write: writers of the same path, in any process or thread, take turns. So of two
  ``atomic_folder(path, overwrite=False)`` at once the second raises :class:`FileExistsError`, and two
  ``overwrite=True`` writes both succeed, one after the other, leaving one complete output. The lock file is
  removed when the write ends.
* **No moment without the output.** An existing folder is replaced by swapping it with the new one in one
  ``renameat2(RENAME_EXCHANGE)`` call (Linux ≥ 3.15), then deleting the old one: a reader finds the old folder
  or the new one at ``path``, never nothing. Files are replaced by one ``rename``, which is atomic everywhere.
* **Crash leftovers are cleaned.** A killed writer leaves its hidden ``.NAME.*.tmp``/``.NAME.*.old`` and its
  lock file (holding its process id). The next writer of that path, once it holds the lock (so no live writer
  is using them), removes them; if a crash in the two-rename fallback left ``path`` missing, the earlier output
  is first put back.
* **Nothing is replaced by mistake.** ``atomic_folder(..., overwrite=True, replaceable=...)`` deletes an
  existing folder only if ``replaceable`` accepts it. A folder is never written over a file nor a file over a
  folder, and ``.``, ``..``, the current folder and its parents are refused as targets.

Only the standard library is used. Without ``fcntl`` (Windows) writers are not locked: each write is still all or
nothing, but concurrent writers of one path are not serialised, and crash leftovers are not cleaned.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
# renameat2 system call numbers, for a libc older than glibc 2.28 that lacks the wrapper
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "ppc64le": 357, "s390x": 347, "i686": 353}
_TOKEN_HEX = 12
_held = threading.local()


class NotReplaceableError(FileExistsError):
    """An existing folder at the target is not the kind of output being written, so it is not deleted."""


def _load_renameat2() -> Callable[[bytes, bytes, int], int] | None:
    """``renameat2(AT_FDCWD, src, AT_FDCWD, dst, flags)`` through libc, or ``None`` where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    func = getattr(libc, "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        func.restype = ctypes.c_int
        return lambda src, dst, flags: func(_AT_FDCWD, src, _AT_FDCWD, dst, flags)
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return lambda src, dst, flags: syscall(
        ctypes.c_long(number),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(src),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(dst),
        ctypes.c_uint(flags),
    )


_renameat2 = _load_renameat2()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2`` with ``flags``; ``False`` when this system or file system cannot do it (nothing was done)."""
    if _renameat2 is None:
        return False
    if _renameat2(os.fsencode(src), os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    # ENOSYS: a kernel before 3.15; EINVAL: a file system without the flag (some network and FUSE ones)
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def _target(path: str | os.PathLike) -> Path:
    """``path`` with its folder resolved (the last component is kept: a symlink there is replaced, not followed)."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(
            f"refusing to write to {str(path)!r}: that is the current folder, a parent of it or the root; name a "
            "file or folder inside it"
        )
    return path.parent.resolve() / path.name


def _refuse_cwd(path: Path) -> None:
    cwd = Path.cwd().resolve()
    if path.resolve() in (cwd, *cwd.parents):
        raise ValueError(f"refusing to replace {path}: it is the current folder or one of its parents")


def _sibling(path: Path, suffix: str) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_HEX // 2)}.{suffix}"


def temporary_of(path: str | os.PathLike) -> Path | None:
    """The output whose temporary (``.NAME.<12 hex>.tmp``) or earlier (``.old``) file or folder ``path`` is, if any."""
    path = Path(path)
    match = re.fullmatch(rf"\.(?P<name>.+)\.[0-9a-f]{{{_TOKEN_HEX}}}\.(tmp|old)", path.name)
    return None if match is None else path.parent / match["name"]


def _leftovers(path: Path) -> list[Path]:
    """Hidden siblings that writers of exactly ``path`` make (``.NAME.<12 hex>.tmp`` or ``.old``)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{{_TOKEN_HEX}}}\.(tmp|old)")
    with os.scandir(path.parent) as entries:
        return [path.parent / e.name for e in entries if pattern.fullmatch(e.name)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _clean_after_crash(path: Path) -> None:
    """Remove what a killed writer of ``path`` left; first put back the earlier output if it left none."""
    leftovers = _leftovers(path)
    olds = sorted((p for p in leftovers if p.suffix == ".old"), key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(path):
        # the two-rename fallback died between its renames: the newest .old is the earlier output
        os.rename(olds[-1], path)
        leftovers.remove(olds[-1])
    for leftover in leftovers:
        _remove(leftover)


def _open_lock(lock_path: Path, path: Path, timeout: float | None) -> int:
    """Open and exclusively lock ``lock_path``; returns the descriptor."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            _flock(fd, lock_path, path, deadline)
            # the holder before us removes the lock file before releasing it: retry on the file now there
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)


def _flock(fd: int, lock_path: Path, path: Path, deadline: float | None) -> None:
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = lock_path.read_text(errors="replace").strip() or "unknown"
                raise TimeoutError(
                    f"{path} is being written by another process (pid {holder}, lock {lock_path}); gave up waiting"
                ) from None
            time.sleep(0.02)


@contextmanager
def _locked(path: Path, *, timeout: float | None) -> Iterator[None]:
    """Hold the write lock of ``path``; clean up after a writer that died holding it."""
    held = getattr(_held, "paths", None)
    if held is None:
        held = _held.paths = set()
    if path in held:
        raise RuntimeError(f"{path} is already being written by this thread (nested writes of one path)")
    _make_parent(path)
    if fcntl is None:  # no flock, and an open lock file could not be removed
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
        return
    lock_path = path.parent / f".{path.name}.lock"
    fd = _open_lock(lock_path, path, timeout)
    held.add(path)
    try:
        if os.fstat(fd).st_size > 0:  # a writer's pid is still there: it was killed while writing
            _clean_after_crash(path)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        held.discard(path)
        # removed while still locked: a waiter that then gets this lock sees the file gone and retries
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def _make_parent(path: Path) -> None:
    """Make the folder ``path`` goes into; an error names what is in the way (``mkdir`` names only a path)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # a file where a folder of the path should be
        blocker = next((p for p in reversed(path.parents) if os.path.lexists(p) and not p.is_dir()), path.parent)
        raise NotADirectoryError(f"cannot write {path}: {blocker} is a file, not a folder") from None
    except OSError as err:
        raise type(err)(
            err.errno, f"cannot make the folder {path.parent} to write {path} in ({err.strerror})"
        ) from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems cannot sync a folder
            raise
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            file = Path(root, name)
            if file.is_file() and not file.is_symlink():  # opening a FIFO would block
                _fsync(file)
        _fsync(Path(root))


def _check_file_target(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"refusing to write the file {path}: a folder of that name is there")


@contextmanager
def atomic_path(path: str | os.PathLike, *, timeout: float | None = None, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary file beside ``path``; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path
        The file to write. Its folder is made if needed. An existing file is replaced.
    timeout
        Seconds to wait for another writer of ``path`` to finish; ``None`` waits as long as it takes.
    durable
        Flush the file to disk before it replaces ``path`` (see the module's notes).

    Yields
    ------
    An empty file (mode ``0666 & ~umask``) to write the output into.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    TimeoutError
        Another process kept writing ``path`` for longer than ``timeout``.
    """
    path = _target(path)
    _check_file_target(path)
    with _locked(path, timeout=timeout):
        tmp = _sibling(path, "tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        try:
            yield tmp
            if durable:
                _fsync(tmp)
            _check_file_target(path)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            _fsync(path.parent)


def _check_folder_target(path: Path, overwrite: bool, replaceable: Callable[[Path], bool] | None) -> None:
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"refusing to write the folder {path}: a file of that name is there")
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    if replaceable is not None and not replaceable(path):
        raise NotReplaceableError(
            f"refusing to replace the folder {path}: it is not the kind of output being written there, so "
            "overwrite=True does not delete it; choose another path, or remove the folder yourself"
        )


def _swap_in(tmp: Path, path: Path, overwrite: bool, replaceable: Callable[[Path], bool] | None) -> None:
    """Put the finished folder ``tmp`` at ``path``; an earlier folder there is deleted after the swap."""
    _check_folder_target(path, overwrite, replaceable)  # again: the writing may have taken long
    if not os.path.lexists(path):
        if not _rename2(tmp, path, _RENAME_NOREPLACE):
            os.rename(tmp, path)
        return
    if _rename2(tmp, path, _RENAME_EXCHANGE):
        _remove(tmp)  # the earlier output, now under the temporary name
        return
    # No renameat2 (not Linux, an old kernel, or a file system without RENAME_EXCHANGE): two renames, with a
    # moment in between when ``path`` is missing. A crash there is repaired by the next writer (_clean_after_crash).
    old = _sibling(path, "old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    _remove(old)


@contextmanager
def atomic_folder(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    timeout: float | None = None,
    durable: bool = True,
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path
        The folder to write. Its parent is made if needed.
    overwrite
        Replace an existing folder at ``path``; without it an existing ``path`` is an error.
    replaceable
        Says whether an existing folder may be replaced (e.g. "holds a ``model.json`` of a bedspace model"):
        with ``overwrite=True``, a folder it rejects is kept and :class:`NotReplaceableError` is raised.
        ``None`` accepts any folder.
    timeout
        Seconds to wait for another writer of ``path`` to finish; ``None`` waits as long as it takes.
    durable
        Flush every file of the folder to disk before it replaces ``path`` (see the module's notes).

    Yields
    ------
    An empty folder (mode ``0777 & ~umask``) to write the output into.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false (also when another process wrote it while this one waited).
    NotReplaceableError
        ``replaceable`` rejected the folder at ``path`` (a subclass of :class:`FileExistsError`).
    NotADirectoryError
        ``path`` is a file.
    ValueError
        ``path`` is ``.``, ``..``, the current folder or one of its parents.
    TimeoutError
        Another process kept writing ``path`` for longer than ``timeout``.
    """
    path = _target(path)
    _refuse_cwd(path)
    with _locked(path, timeout=timeout):
        _check_folder_target(path, overwrite, replaceable)
        tmp = _sibling(path, "tmp")
        os.mkdir(tmp, 0o777)
        try:
            yield tmp
            if durable:
                _fsync_tree(tmp)
            _swap_in(tmp, path, overwrite, replaceable)
        except BaseException:
            _remove(tmp)
            raise
        if durable:
            _fsync(path.parent)


def atomic_write_bytes(
    data: bytes, path: str | os.PathLike, *, timeout: float | None = None, durable: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, timeout=timeout, durable=durable) as tmp:
        tmp.write_bytes(data)
