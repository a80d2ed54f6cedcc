"""Which universe regions a region set overlaps (the tokenization kernel).

Overlap rule: that of ``bedtools intersect -u -a universe -b set``. Half-open intervals that share at least one
base overlap; a zero-length interval ``[p, p)`` is treated as ``[p - 1, p + 1)``, as bedtools does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from ._formats.bed import Intervals
from ._quiet import pyranges


def bedtools_extent(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widen zero-length intervals the way bedtools does, so overlaps match it exactly."""
    empty = starts == ends
    if not empty.any():
        return starts, ends
    return np.where(empty, np.maximum(starts - 1, 0), starts), np.where(empty, ends + 1, ends)


@numba.njit(cache=True, nogil=True)
def _union_of_ranges(lo, hi):
    """Sorted distinct integers covered by the half-open ranges ``[lo[i], hi[i])``."""
    n = lo.size
    order = np.arange(n)
    for i in range(1, n):
        if lo[i] < lo[i - 1]:
            order = np.argsort(lo, kind="mergesort")
            break
    total = 0
    frontier = -1
    for k in range(n):
        i = order[k]
        a = max(lo[i], frontier)
        if hi[i] > a:
            total += hi[i] - a
            frontier = hi[i]
    out = np.empty(total, np.int32)  # universe row numbers; callers keep universes below 2**31 regions
    m = 0
    frontier = -1
    for k in range(n):
        i = order[k]
        a = max(lo[i], frontier)
        for j in range(a, hi[i]):
            out[m] = j
            m += 1
        if hi[i] > frontier:
            frontier = hi[i]
    return out


@numba.njit(cache=True, nogil=True)
def _first_end_after(ends, lo, hi, x):
    """First row in ``[lo, hi)`` whose end is past ``x`` (``hi`` if none); ``ends`` ascending there."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if ends[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def _overlapped_rows(u_starts, u_ends, run_u0, run_u1, run_bounds, starts, ends, lo, hi):
    """Per interval, the universe rows ``[lo, hi)`` it overlaps (a sorted, non-overlapping universe).

    Run ``r`` of intervals (one chromosome) is searched in the universe rows ``[run_u0[r], run_u1[r])``. Peak
    files list their intervals by position, so the search gallops forward from the previous interval's answer
    (a merge, reading the universe once) and falls back to a binary search when an interval starts before the
    previous one. ``hi`` is walked from ``lo``: the rows in between are the interval's tokens.
    """
    for r in range(run_u0.size):
        u0, u1 = run_u0[r], run_u1[r]
        j = u0
        previous = -1
        for i in range(run_bounds[r], run_bounds[r + 1]):
            start = starts[i]
            if start < previous:
                j = _first_end_after(u_ends, u0, u1, start)
            elif j < u1 and u_ends[j] <= start:
                step = 1
                while j + step < u1 and u_ends[j + step] <= start:
                    step *= 2
                j = _first_end_after(u_ends, j + step // 2 + 1, min(j + step, u1), start)
            previous = start
            k = j
            while k < u1 and u_starts[k] < ends[i]:
                k += 1
            lo[i] = j
            hi[i] = k


@dataclass(frozen=True)
class SetTokens:
    """Tokenization of one region set."""

    tokens: np.ndarray  # sorted universe row numbers (int32)
    n_regions: int
    n_regions_in_universe: int
    chromosomes_shared: bool  # False when the set has intervals but none on a universe chromosome
    #: The set's chromosomes the universe spells otherwise (``Chr2L``, ``CHR1``, ``1`` for ``chr2L``, ``chr1``):
    #: ``(set's name, the universe's name(s), intervals on it)``; their intervals get no tokens.
    misspelled: tuple[tuple[str, str, int], ...] = ()


def spelling_key(chrom: str) -> str:
    """A chromosome name without case or a ``chr`` prefix: ``Chr2L``, ``CHR2L`` and ``2L`` all give ``2l``."""
    key = chrom.lower()
    return key[3:] if key.startswith("chr") and len(key) > 3 else key


class UniverseIndex:
    """A universe prepared for fast overlap queries.

    A sorted, non-overlapping universe (tiles, merged consensus) is searched with binary search per
    chromosome; a universe whose regions overlap each other goes through pyranges1.
    """

    def __init__(self, chrom: pd.Categorical, starts: np.ndarray, ends: np.ndarray):
        self.n_regions = int(starts.size)
        if self.n_regions >= np.iinfo(np.int32).max:
            raise ValueError(f"a universe of {self.n_regions} regions is too large (at most 2**31 - 1)")
        codes = np.asarray(chrom.codes, dtype=np.int64)
        names = np.asarray(chrom.categories, dtype=object)
        self.chromosomes = set(names[np.unique(codes)].tolist())
        self._spellings: dict[str, list[str]] = {}
        for name in sorted(self.chromosomes):
            self._spellings.setdefault(spelling_key(name), []).append(name)
        starts, ends = bedtools_extent(starts, ends)
        order = np.lexsort((ends, starts, codes))
        codes_sorted, starts_sorted, ends_sorted = codes[order], starts[order], ends[order]
        change = np.flatnonzero(codes_sorted[1:] != codes_sorted[:-1]) + 1
        bounds = np.concatenate([[0], change, [codes_sorted.size]]).astype(np.int64)
        self._chrom_slices = {
            str(names[codes_sorted[bounds[i]]]): (int(bounds[i]), int(bounds[i + 1])) for i in range(bounds.size - 1)
        }
        same_chrom = codes_sorted[1:] == codes_sorted[:-1]
        self.non_overlapping = bool(not (same_chrom & (ends_sorted[:-1] > starts_sorted[1:])).any())
        self._order = None if np.array_equal(order, np.arange(order.size)) else order
        if self.non_overlapping:
            self._starts, self._ends = starts_sorted, ends_sorted
        else:
            pr = pyranges()  # imported on use: sorted universes (the usual case) never need it
            self._ranges = pr.PyRanges(
                {"Chromosome": np.asarray(chrom), "Start": starts, "End": ends, "row": np.arange(starts.size)}
            )

    def tokenize(self, intervals: Intervals) -> SetTokens:
        """Find the universe rows a region set overlaps, with QC counts."""
        n = len(intervals)
        shared = not n or bool(intervals.chromosomes & self.chromosomes)
        if self.non_overlapping:
            tokens, n_hit = self._tokenize_sorted(intervals)
        else:
            tokens, n_hit = self._tokenize_general(intervals)
        return SetTokens(tokens, n, n_hit, shared, self._misspelled(intervals))

    def _misspelled(self, intervals: Intervals) -> tuple[tuple[str, str, int], ...]:
        """The set's chromosomes that the universe has, but spelled otherwise (by case or a ``chr`` prefix).

        Their intervals would be dropped without a word: ``Chr2L`` is not ``chr2L`` to an overlap, and a file may
        mix ``chr1`` and ``1``. Matching them silently could join chromosomes that differ, so the caller warns.
        """
        unknown = intervals.chromosomes - self.chromosomes
        found = {c: self._spellings[spelling_key(c)] for c in unknown if spelling_key(c) in self._spellings}
        if not found:
            return ()
        lengths = np.diff(intervals.run_bounds)
        counts = dict.fromkeys(found, 0)
        for chrom, length in zip(intervals.run_chroms, lengths.tolist(), strict=True):
            if chrom in counts:
                counts[chrom] += length
        return tuple((c, " or ".join(found[c]), counts[c]) for c in sorted(found))

    def _tokenize_sorted(self, intervals: Intervals) -> tuple[np.ndarray, int]:
        starts, ends = bedtools_extent(intervals.starts, intervals.ends)
        lo = np.zeros(starts.size, np.int64)
        hi = np.zeros(starts.size, np.int64)
        nowhere = (0, 0)  # a chromosome the universe lacks: no rows to search
        slices = np.array([self._chrom_slices.get(c, nowhere) for c in intervals.run_chroms], np.int64).reshape(-1, 2)
        _overlapped_rows(
            self._starts, self._ends, slices[:, 0], slices[:, 1], np.asarray(intervals.run_bounds, np.int64),
            starts, ends, lo, hi,
        )  # fmt: skip
        n_hit = int(np.count_nonzero(hi > lo))
        tokens = _union_of_ranges(lo, hi)
        if self._order is not None:
            tokens = np.sort(self._order[tokens]).astype(np.int32)
        return tokens, n_hit

    def _tokenize_general(self, intervals: Intervals) -> tuple[np.ndarray, int]:
        if len(intervals) == 0:
            return np.zeros(0, np.int32), 0
        frame = intervals.to_frame()
        frame["Start"], frame["End"] = bedtools_extent(frame["Start"].to_numpy(), frame["End"].to_numpy())
        query = pyranges().PyRanges(frame)
        hits = self._ranges.overlap(query, strand_behavior="ignore")
        tokens = np.unique(hits["row"].to_numpy()).astype(np.int32)
        n_hit = len(query.overlap(self._ranges, strand_behavior="ignore"))
        return tokens, n_hit
