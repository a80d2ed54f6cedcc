"""Downloads: checksummed, cached, moved into place only when whole; the one home of every file bedspace fetches.

:func:`fetch` runs pooch (``pooch.retrieve`` with ``known_hash``) through a downloader of its own (a progress bar,
``file://`` mirrors); :func:`cache_dir` is where downloads and what is derived from them are kept. A file whose
sha256 differs is refused as a :class:`ChecksumMismatchError` naming it and both digests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
from tqdm.auto import tqdm


class ChecksumMismatchError(ValueError):
    """Downloaded (or derived) data is not what bedspace expects: a corrupt download, or a changed source."""


def checksum_mismatch(actual: str, expected: str, *, what: str) -> ChecksumMismatchError:
    """The :class:`ChecksumMismatchError` of data named ``what`` whose sha256 is ``actual``, not ``expected``."""
    return ChecksumMismatchError(
        f"{what}: sha256 is {actual}, expected {expected}. The data is corrupt or its source changed; it was "
        "not kept. Try again; if this persists, the source no longer serves the data bedspace was made for"
    )


def check_sha256(actual: str, expected: str, *, what: str) -> None:
    """Raise :class:`ChecksumMismatchError` naming ``what`` and both digests unless they are equal."""
    if actual != expected:
        raise checksum_mismatch(actual, expected, what=what)


def cache_dir() -> Path:
    """Where bedspace keeps downloaded and derived data: ``$BEDSPACE_CACHE_DIR`` or the user cache folder."""
    return Path(os.environ.get("BEDSPACE_CACHE_DIR") or platformdirs.user_cache_dir("bedspace"))


def fetch(url: str, destination: Path, *, desc: str, sha256: str | None = None) -> None:
    """Download ``url`` to ``destination`` through pooch, with a progress bar; refuse content whose sha256 differs.

    pooch streams the download into a temporary file beside ``destination``, checks it against ``known_hash``
    and only then moves it into place, so ``destination`` is whole or absent; a file already there with the right
    sha256 is not downloaded again. ``sha256=None`` (a file not pinned to a version) is not checked.

    Raises
    ------
    ChecksumMismatchError
        The download's sha256 is not ``sha256``; the message names the file, the URL and both digests.
    OSError
        The download failed (no connection, an HTTP error, a missing local file, an unknown protocol), naming
        ``url``.
    """
    import pooch

    download = _Download(desc)
    try:
        with _quiet_pooch():
            pooch.retrieve(
                url,
                known_hash=None if sha256 is None else f"sha256:{sha256}",
                fname=destination.name,
                path=destination.parent,
                downloader=download,
            )
    except ValueError as err:  # pooch's hash mismatch (or an unknown protocol): its temporary file is deleted
        if sha256 is not None and download.sha256 is not None and download.sha256 != sha256:
            raise checksum_mismatch(
                download.sha256, sha256, what=f"{destination.name} (downloaded from {url})"
            ) from err
        raise OSError(f"could not download {url}: {err}") from err
    except OSError as err:  # requests' errors are OSErrors too
        raise OSError(f"could not download {url}: {err}") from err


class _Download:
    """The downloader pooch runs: bedspace's progress bar, and the sha256 of what arrived (for a mismatch's message).

    HTTP(S) and FTP go through pooch's :class:`pooch.HTTPDownloader` and :class:`pooch.FTPDownloader` (1 MB
    chunks, a 60 s timeout); ``file://`` URLs (a mirror on a shared file system) are copied.
    """

    def __init__(self, desc: str):
        self.desc = desc
        self.sha256: str | None = None

    def __call__(self, url: str, output_file: str, pooch_instance) -> None:
        import pooch

        scheme = urllib.parse.urlparse(url).scheme
        with tqdm(unit="B", unit_scale=True, desc=self.desc, leave=False) as shown:
            bar = _Bar(shown)
            if scheme == "file":
                _copy(urllib.request.url2pathname(urllib.parse.urlparse(url).path), output_file, bar)
            elif scheme in ("http", "https"):
                pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 20, timeout=60)(url, output_file, pooch_instance)
            elif scheme == "ftp":
                pooch.FTPDownloader(progressbar=bar, chunk_size=1 << 20, timeout=60)(url, output_file, pooch_instance)
            else:
                raise ValueError(f"unknown protocol {scheme!r}: bedspace downloads from https, http, ftp and file URLs")
        digest = hashlib.sha256()
        with open(output_file, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        self.sha256 = digest.hexdigest()


class _Bar:
    """A tqdm bar as pooch drives one: it sets ``total``, calls ``update``, ``reset`` and ``close``.

    pooch asks the bar's truth to know whether to show progress, which tqdm refuses (or denies) while the total is
    unknown; this one is always there. It is closed by its owner, not by pooch.
    """

    def __init__(self, bar):
        self._bar = bar

    def __bool__(self) -> bool:
        return True

    @property
    def total(self) -> int | None:
        return self._bar.total

    @total.setter
    def total(self, value: int | None) -> None:
        self._bar.total = value or None  # 0: no Content-Length, an unknown size
        self._bar.refresh()

    def update(self, n: int) -> None:
        self._bar.update(n)

    def reset(self) -> None:
        self._bar.reset(total=self._bar.total)

    def close(self) -> None:
        pass


def _copy(source: str, output_file: str, bar: _Bar) -> None:
    with open(source, "rb") as src, open(output_file, "wb") as out:
        bar.total = os.fstat(src.fileno()).st_size
        while chunk := src.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Keep pooch quiet: it logs every download (and the sha256 of unpinned ones) at info level."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
