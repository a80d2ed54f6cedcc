"""Region tokens: the 0/1 sets × universe regions matrix, and reading some of its rows wherever it lives.

A collection's tokens are one CSR matrix (``indptr``, ``indices``; any nonzero value means "the set has the
region"). :class:`TokenMatrix` reads rows of it in memory (a scipy matrix, read in place), memory-mapped (a model
folder's ``.npy`` files: only the pages of the rows read come off the disk) or from an ``.h5ad`` file opened
backed (an h5py CSR group: only those rows are read). The annotator and the embedding read tokens through it
alone, so a collection too large for memory answers the same as one in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from .._lazy import is_sparse

if TYPE_CHECKING:
    import scipy.sparse as sp

#: Rows of a collection are read this many tokens at a time when it is read whole (about 80 MB of an ``.h5ad``).
CHUNK_TOKENS = 2**24


def token_dtype(n_regions: int) -> type:
    """float32 counts shared regions exactly below 2**24 universe regions; float64 above."""
    return np.float32 if n_regions < 2**24 else np.float64


def binary_csr(matrix, *, name: str) -> sp.csr_matrix:
    """``matrix`` as a CSR of 0/1 (any nonzero counts as "has the region"), checked; not copied when it is one.

    Values are float32 below 2**24 columns (sparse products then count shared regions exactly, and a collection
    from :func:`bedspace.pp.tokenize` costs no second copy) and float64 above.
    """
    import scipy.sparse as sp  # imported on use: a query of a model folder needs none of it

    if not sp.issparse(matrix):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"{name} must be a 2-D sets × regions matrix, got shape {matrix.shape}")
    dtype = token_dtype(matrix.shape[1])
    if (
        sp.issparse(matrix)
        and matrix.format == "csr"
        and matrix.dtype == dtype
        and matrix.has_canonical_format  # no duplicate entries: each region counts once
        and _all_ones(matrix.data)
    ):
        return matrix
    matrix = sp.csr_matrix(matrix, copy=True)  # the caller's matrix is left as it is
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return sp.csr_matrix((np.ones(matrix.nnz, dtype=dtype), matrix.indices, matrix.indptr), shape=matrix.shape)


@numba.njit(cache=True, nogil=True)
def _rows_binary(indptr, indices, data, rows) -> bool:
    """Whether every value of these rows is 1 and each row's columns are strictly increasing (canonical CSR)."""
    for row in rows:
        start, stop = indptr[row], indptr[row + 1]
        for p in range(start, stop):
            if data[p] != 1 or (p > start and indices[p] <= indices[p - 1]):
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _rows_canonical(indptr, indices, rows) -> bool:
    """Whether each of these rows' columns are strictly increasing."""
    for row in rows:
        for p in range(indptr[row] + 1, indptr[row + 1]):
            if indices[p] <= indices[p - 1]:
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _all_ones(values: np.ndarray) -> bool:
    """Whether every value is 1, without the temporary ``values == 1`` (a byte a token: 0.8 GB for 10,000 sets)."""
    for value in values:
        if value != 1:
            return False
    return True


@dataclass(frozen=True)
class TokenRows:
    """Some rows of a 0/1 token matrix, as CSR arrays (possibly the whole matrix's, read in place).

    Row ``i`` of these is ``indices[indptr[rows[i]]:indptr[rows[i] + 1]]``: sorted, each region once.
    """

    indptr: np.ndarray
    indices: np.ndarray
    rows: np.ndarray
    n_regions: int

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def n_sets(self) -> int:
        """Number of rows."""
        return int(self.rows.size)

    def read(self, positions: np.ndarray | None = None) -> TokenRows:
        """These rows at ``positions`` (default: all), as :meth:`TokenMatrix.read` reads a collection's."""
        return self if positions is None else self.subset(positions)

    @property
    def sizes(self) -> np.ndarray:
        """Regions of each row (float64: they enter ratios)."""
        return (self.indptr[self.rows + 1] - self.indptr[self.rows]).astype(np.float64)

    def subset(self, positions: np.ndarray) -> TokenRows:
        """These rows at ``positions`` (still read in place)."""
        return TokenRows(self.indptr, self.indices, self.rows[np.asarray(positions, dtype=np.int64)], self.n_regions)

    def compact(self) -> TokenRows:
        """These rows in arrays of their own, in order (``rows`` then ``0 … n - 1``)."""
        starts, stops = self.indptr[self.rows], self.indptr[self.rows + 1]
        indptr = np.zeros(self.rows.size + 1, np.int64)
        np.cumsum(stops - starts, out=indptr[1:])
        indices = np.concatenate(
            [np.zeros(0, np.int32)] + [self.indices[a:b] for a, b in zip(starts, stops, strict=True)]
        )
        return TokenRows(indptr, indices, np.arange(self.rows.size, dtype=np.int64), self.n_regions)

    @classmethod
    def stacked(cls, parts: Sequence[TokenRows], n_regions: int) -> TokenRows:
        """The rows of ``parts``, one after the other, in arrays of their own."""
        compact = [part.compact() for part in parts]
        sizes = np.concatenate([np.zeros(0, np.int64)] + [np.diff(part.indptr) for part in compact])
        indptr = np.zeros(sizes.size + 1, np.int64)
        np.cumsum(sizes, out=indptr[1:])
        indices = np.concatenate([np.zeros(0, np.int32)] + [part.indices for part in compact])
        return cls(indptr, indices, np.arange(sizes.size, dtype=np.int64), n_regions)

    def to_csr(self) -> sp.csr_matrix:
        """The rows as a 0/1 CSR matrix of their own (a copy)."""
        import scipy.sparse as sp

        compact = self.compact()
        data = np.ones(compact.indices.size, token_dtype(self.n_regions))
        return sp.csr_matrix((data, compact.indices, compact.indptr), shape=(self.rows.size, self.n_regions))

    def by_region(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows transposed: per universe region, which of these rows (positions) have it, as CSR arrays."""
        return _by_region(self.indptr, self.indices, self.rows, self.n_regions)

    def fingerprint(self) -> np.ndarray:
        """Per row: its number of regions and the sum of their columns (a set whose regions changed changes them)."""
        return _fingerprint(self.indptr, self.indices, self.rows).reshape(-1, 2)


@numba.njit(cache=True, nogil=True)
def _by_region(indptr, indices, rows, n_regions):
    counts = np.zeros(n_regions + 1, np.int64)
    for i in range(rows.size):
        for p in range(indptr[rows[i]], indptr[rows[i] + 1]):
            counts[indices[p] + 1] += 1
    region_indptr = np.cumsum(counts)
    filled = region_indptr[:-1].copy()
    region_rows = np.empty(region_indptr[-1], np.int64)
    for i in range(rows.size):
        for p in range(indptr[rows[i]], indptr[rows[i] + 1]):
            region = indices[p]
            region_rows[filled[region]] = i
            filled[region] += 1
    return region_indptr, region_rows


@numba.njit(cache=True, nogil=True)
def _fingerprint(indptr, indices, rows):
    out = np.empty((rows.size, 2), np.int64)
    for i in range(rows.size):
        total = 0
        for p in range(indptr[rows[i]], indptr[rows[i] + 1]):
            total += indices[p]
        out[i, 0] = indptr[rows[i] + 1] - indptr[rows[i]]
        out[i, 1] = total
    return out


@dataclass(frozen=True)
class CodedTokens:
    """Each row's sorted regions as gaps: what a model folder stores (2 bytes a token instead of 4).

    ``gaps``: per token, its region minus the previous region of its row (the first: the region itself), or
    :data:`ESCAPE` when that does not fit in 16 bits; ``escaped``: those gaps in full, in order;
    ``escaped_ptr``: per row, where its escaped gaps start (``n_sets + 1``).
    """

    gaps: np.ndarray
    escaped: np.ndarray
    escaped_ptr: np.ndarray

    @classmethod
    def encode(cls, indptr: np.ndarray, indices: np.ndarray) -> CodedTokens:
        """The gaps of canonical CSR rows (sorted regions, each once)."""
        indptr = np.asarray(indptr, dtype=np.int64)
        counts = _escapes_per_row(indptr, indices)
        escaped_ptr = np.zeros(indptr.size, np.int64)
        np.cumsum(counts, out=escaped_ptr[1:])
        gaps = np.empty(indices.size, np.uint16)
        escaped = np.empty(int(escaped_ptr[-1]), np.int64)
        _encode(indptr, indices, gaps, escaped)
        return cls(gaps, escaped, escaped_ptr)

    def decode(self, indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)`` of ``rows`` (positions), decoded into arrays of their own."""
        sizes = indptr[rows + 1] - indptr[rows]
        out_indptr = np.zeros(rows.size + 1, np.int64)
        np.cumsum(sizes, out=out_indptr[1:])
        indices = np.empty(int(out_indptr[-1]), np.int32)
        _decode(np.asarray(indptr, np.int64), self.gaps, self.escaped, self.escaped_ptr, rows, out_indptr, indices)
        return out_indptr, indices


#: A gap that does not fit in 16 bits is stored in full, in :attr:`CodedTokens.escaped`.
ESCAPE = 65535


@numba.njit(cache=True, nogil=True)
def _escapes_per_row(indptr, indices):
    counts = np.zeros(indptr.size - 1, np.int64)
    for row in range(indptr.size - 1):
        previous = 0
        for p in range(indptr[row], indptr[row + 1]):
            if indices[p] - previous >= ESCAPE:
                counts[row] += 1
            previous = indices[p]
    return counts


@numba.njit(cache=True, nogil=True)
def _encode(indptr, indices, gaps, escaped):
    e = 0
    for row in range(indptr.size - 1):
        previous = 0
        for p in range(indptr[row], indptr[row + 1]):
            gap = indices[p] - previous
            if gap >= ESCAPE:
                gaps[p] = ESCAPE
                escaped[e] = gap
                e += 1
            else:
                gaps[p] = gap
            previous = indices[p]


@numba.njit(cache=True, nogil=True)
def _decode(indptr, gaps, escaped, escaped_ptr, rows, out_indptr, out):
    for i in range(rows.size):
        row = rows[i]
        e = escaped_ptr[row]
        region = 0
        q = out_indptr[i]
        for p in range(indptr[row], indptr[row + 1]):
            gap = gaps[p]
            if gap == ESCAPE:
                region += escaped[e]
                e += 1
            else:
                region += gap
            out[q] = region
            q += 1


class TokenMatrix:
    """The tokens of a collection of sets, read by rows: in memory, memory-mapped, or in an ``.h5ad`` file.

    Make one with :meth:`of` (a matrix in memory, or an anndata backed ``X``), :meth:`from_arrays` (CSR arrays)
    or :meth:`from_coded` (a model folder's gaps, memory-mapped). :meth:`read` gives rows as :class:`TokenRows`:
    in place when the stored rows already are canonical 0/1, else a converted copy of those rows alone.
    """

    def __init__(self, indptr, indices, n_regions: int, *, data=None, group=None, matrix=None, coded=None):
        self._indptr = indptr
        self._indices = indices
        self._data = data
        self._group = group  # an h5py CSR group: rows are read from the file
        self._matrix = matrix  # the scipy matrix itself, when in memory
        self._coded = coded  # CodedTokens: rows are decoded
        self.n_regions = int(n_regions)

    @classmethod
    def of(cls, matrix) -> TokenMatrix:
        """The tokens of ``matrix``: a scipy sparse or dense matrix, :class:`TokenRows`, or an AnnData's backed ``X``."""
        if isinstance(matrix, TokenMatrix):
            return matrix
        if isinstance(matrix, TokenRows):
            compact = matrix.compact()
            return cls(compact.indptr, compact.indices, matrix.n_regions)
        group = getattr(matrix, "group", None)
        if group is not None and getattr(matrix, "format", None) == "csr":
            indptr = np.asarray(group["indptr"][...], dtype=np.int64)  # n_sets + 1 numbers, small
            return cls(indptr, group["indices"], matrix.shape[1], data=group["data"], group=group)
        if group is not None or not is_sparse(matrix):  # a backed CSC or dense matrix cannot be read by rows
            matrix = matrix.to_memory() if hasattr(matrix, "to_memory") else matrix
        if not is_sparse(matrix) or matrix.format != "csr":
            matrix = binary_csr(matrix, name="tokens")
        return cls(matrix.indptr, matrix.indices, matrix.shape[1], data=matrix.data, matrix=matrix)

    @classmethod
    def from_arrays(cls, indptr: np.ndarray, indices: np.ndarray, n_regions: int) -> TokenMatrix:
        """Canonical 0/1 CSR arrays (sorted columns, each region once), e.g. memory-mapped ``.npy`` files."""
        return cls(indptr, indices, n_regions)

    @classmethod
    def from_coded(cls, indptr: np.ndarray, coded: CodedTokens, n_regions: int) -> TokenMatrix:
        """Rows stored as gaps (:class:`CodedTokens`, e.g. memory-mapped from a model folder)."""
        return cls(np.asarray(indptr, dtype=np.int64), None, n_regions, coded=coded)

    @property
    def n_sets(self) -> int:
        """Number of sets (rows)."""
        return int(len(self._indptr) - 1)

    @property
    def shape(self) -> tuple[int, int]:
        """Sets × universe regions."""
        return self.n_sets, self.n_regions

    @property
    def in_file(self) -> bool:
        """Whether the rows are read from an ``.h5ad`` file (not in memory, not memory-mapped)."""
        return self._group is not None

    @property
    def matrix(self) -> sp.csr_matrix | None:
        """The scipy matrix the tokens are, when they are one in memory."""
        return self._matrix

    @property
    def n_tokens(self) -> np.ndarray:
        """Stored entries per set."""
        return np.diff(np.asarray(self._indptr, dtype=np.int64))

    def read(self, rows: np.ndarray | None = None) -> TokenRows:
        """Rows ``rows`` (default: all) as canonical 0/1 :class:`TokenRows`, reading no other row.

        In place when those rows already are canonical 0/1 (checked for these rows only); otherwise a converted
        copy of those rows alone. From an ``.h5ad`` file, only those rows are read.
        """
        rows = np.arange(self.n_sets, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if self._coded is not None:
            indptr, indices = self._coded.decode(self._indptr, rows)
            return TokenRows(indptr, indices, np.arange(rows.size, dtype=np.int64), self.n_regions)
        if self._group is None:
            if self._data is None:
                if _rows_canonical(self._indptr, self._indices, rows):
                    return TokenRows(self._indptr, self._indices, rows, self.n_regions)
            elif _rows_binary(self._indptr, self._indices, self._data, rows):
                return TokenRows(self._indptr, self._indices, rows, self.n_regions)
        return self._copied(rows)

    def _copied(self, rows: np.ndarray) -> TokenRows:
        """The rows read one run of consecutive rows at a time, made canonical 0/1."""
        parts_indices, parts_data, sizes = [], [], []
        for start, stop in _runs(rows):
            a, b = int(self._indptr[start]), int(self._indptr[stop])
            indices = np.asarray(self._indices[a:b])
            data = np.ones(b - a, np.float32) if self._data is None else np.asarray(self._data[a:b])
            parts_indices.append(indices)
            parts_data.append(data)
            sizes.append(np.diff(np.asarray(self._indptr[start : stop + 1], dtype=np.int64)))
        indptr = np.zeros(rows.size + 1, np.int64)
        if sizes:
            np.cumsum(np.concatenate(sizes), out=indptr[1:])
        import scipy.sparse as sp

        matrix = sp.csr_matrix(
            (
                np.concatenate([np.zeros(0, np.float32)] + parts_data),
                np.concatenate([np.zeros(0, np.int32)] + parts_indices),
                indptr,
            ),
            shape=(rows.size, self.n_regions),
        )
        matrix = binary_csr(matrix, name="tokens")
        return TokenRows(matrix.indptr, matrix.indices, np.arange(rows.size, dtype=np.int64), self.n_regions)

    def chunks(self, chunk_tokens: int = CHUNK_TOKENS) -> Iterator[tuple[int, int]]:
        """Consecutive ``(start, stop)`` row ranges of at most ``chunk_tokens`` tokens (a longer row is one range)."""
        yield from row_chunks(np.asarray(self._indptr, dtype=np.int64), chunk_tokens)

    def csr(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows ``start:stop`` as a CSR matrix of their own, values as stored (for the embedding's sums)."""
        import scipy.sparse as sp

        if self._coded is not None:
            return self.read(np.arange(start, stop)).to_csr()
        a, b = int(self._indptr[start]), int(self._indptr[stop])
        indptr = np.asarray(self._indptr[start : stop + 1], dtype=np.int64) - a
        indices = np.asarray(self._indices[a:b])
        data = np.ones(b - a, np.float32) if self._data is None else np.asarray(self._data[a:b])
        return sp.csr_matrix((data, indices, indptr), shape=(stop - start, self.n_regions))


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """``rows`` as ``(start, stop)`` runs of consecutive rows, in their order."""
    if rows.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def row_chunks(indptr: np.ndarray, chunk_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of at most ``chunk_tokens`` tokens (a longer row is one range)."""
    n_rows = indptr.size - 1
    chunks, start = [], 0
    while start < n_rows:
        stop = int(np.searchsorted(indptr, indptr[start] + chunk_tokens, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        chunks.append((start, stop))
        start = stop
    return chunks


def blocks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows covering ``0 … n - 1``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def positions_in(sorted_rows: np.ndarray, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Position of each of ``rows`` in ``sorted_rows`` (ascending), or -1 where it is not there (or is -1)."""
    rows = np.asarray(rows, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_rows, rows), max(sorted_rows.size - 1, 0))
    found = (rows >= 0) & (sorted_rows.size > 0)
    found[found] = sorted_rows[at[found]] == rows[found]
    return np.where(found, at, -1)
