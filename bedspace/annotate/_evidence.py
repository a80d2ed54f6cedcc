"""How much a query's probabilities can be trusted given how much evidence it carries: few regions, one chromosome.

The calibration is fitted on whole region sets (tens of thousands of regions). A query of a handful of regions,
or of the regions of one chromosome, is scored by the same classifier, and its softmax can be as peaked as a whole
set's: a one-region file was answered "blood, 0.945" while such files are right half the time. So the annotator
also annotates sub-files of its reference sets (random subsets of a set's regions at each size of :data:`SIZES`,
and all of a set's regions on one chromosome) with classifiers that never saw them, and keeps, per field and size,
the share it got right: :class:`Evidence`. A query below the size from which sub-files are no longer
overconfident, or on one chromosome, is flagged, and its top probability is brought down to that share (mixed
with the uniform distribution, which keeps the labels' order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._tokens import TokenRows

#: Sub-file sizes (regions in the universe) at which the reference sets are sampled.
SIZES = np.array([1, 3, 10, 30, 100, 300, 1000, 3000, 10000])
#: At most this many reference sets are cut into sub-files (each cut at every size it exceeds).
MAX_SETS = 300
#: Folds of the classifiers that annotate the sub-files (each fitted on the other folds' sets).
FOLDS = 5
#: Sub-files are overconfident at a size when their mean stated confidence exceeds their accuracy by more than this.
TOLERANCE = 0.05
#: Sub-files a ceiling counts as if they were, besides those measured (at chance): few sub-files earn little.
PRIOR_COUNT = 2.0
#: A capped row keeps at least this weight of its own probabilities (the rest uniform): its labels keep their order
#: even where what it earns is no more than chance.
MIN_WEIGHT = 1e-6
#: Labels of the reference sets span at least this many chromosomes for "one chromosome" to mean little evidence.
MIN_SPREAD = 3

FULL, FEW_REGIONS, ONE_CHROMOSOME = "full", "few regions", "one chromosome"


@dataclass(frozen=True)
class Chromosomes:
    """The chromosome of each universe region, as runs: region ``i`` is on ``codes[j]`` for the run ``j`` holding it."""

    starts: np.ndarray
    codes: np.ndarray

    @classmethod
    def of(cls, per_region) -> Chromosomes:
        """From one code (any integer, or any value) per universe region."""
        values = np.asarray(per_region)
        if values.dtype.kind not in "iu":
            _, values = np.unique(values, return_inverse=True)
        values = values.astype(np.int64).reshape(-1)
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if values.size else np.zeros(0, np.int64)
        return cls(starts.astype(np.int64), values[starts])

    def of_regions(self, regions: np.ndarray) -> np.ndarray:
        """The chromosome code of each of ``regions`` (universe positions)."""
        return self.codes[np.searchsorted(self.starts, regions, side="right") - 1]

    def only(self, rows: TokenRows) -> np.ndarray:
        """Per row, the chromosome all its regions lie on, or -1 (regions on several chromosomes, or none)."""
        compact = rows.compact()
        sizes = np.diff(compact.indptr)
        found = np.full(len(rows), -1, np.int64)
        if compact.indices.size == 0:
            return found
        on = self.of_regions(compact.indices)
        # a row is on one chromosome when every region shares its first region's chromosome
        first = on[compact.indptr[:-1][sizes > 0]]
        others = np.bincount(
            np.repeat(np.arange(len(rows)), sizes), weights=on != np.repeat(first, sizes[sizes > 0]),
            minlength=len(rows),
        )  # fmt: skip
        found[sizes > 0] = np.where(others[sizes > 0] == 0, first, -1)
        return found


@dataclass(frozen=True)
class SubFiles:
    """Sub-files cut from reference sets: their tokens, the set each came from, its kind (a size or one chromosome)."""

    tokens: TokenRows
    source: np.ndarray
    chromosome: np.ndarray
    spread: np.ndarray

    @property
    def one_chromosome(self) -> np.ndarray:
        """Per sub-file, whether it is a set's regions on one chromosome (not a random subset)."""
        return self.chromosome >= 0

    @classmethod
    def cut(cls, rows: TokenRows, chromosomes: Chromosomes | None, rng: np.random.Generator) -> SubFiles:
        """Every set of ``rows`` at each size of :data:`SIZES` below its own, and on each of its chromosomes.

        (``spread``: per set of ``rows``, on how many chromosomes its regions lie; 0 when they are unknown.)
        """
        compact = rows.compact()
        parts, source, one = [], [], []
        spread = np.zeros(len(rows), np.int64)
        for i in range(len(rows)):
            regions = compact.indices[compact.indptr[i] : compact.indptr[i + 1]]
            for size in SIZES[SIZES < regions.size]:
                parts.append(np.sort(rng.choice(regions, size, replace=False)))
                source.append(i)
                one.append(-1)
            if chromosomes is None or regions.size == 0:
                continue
            on = chromosomes.of_regions(regions)
            present = np.unique(on)
            spread[i] = present.size
            if present.size < 2:
                continue
            for code in present:
                parts.append(regions[on == code])
                source.append(i)
                one.append(code)
        sizes = np.array([p.size for p in parts], dtype=np.int64)
        indptr = np.zeros(sizes.size + 1, np.int64)
        np.cumsum(sizes, out=indptr[1:])
        indices = np.concatenate([np.zeros(0, compact.indices.dtype), *parts]).astype(compact.indices.dtype)
        tokens = TokenRows(indptr, indices, np.arange(sizes.size, dtype=np.int64), rows.n_regions)
        return cls(tokens, np.asarray(source, np.int64), np.asarray(one, np.int64), spread)


@dataclass(frozen=True)
class Evidence:
    """Per field, what sub-files of the reference sets earn: the share of them annotated right, by size.

    Attributes
    ----------
    min_regions
        Queries with fewer regions in the universe than this are flagged: sub-files of the reference sets that
        small were overconfident, and every set the calibration was fitted on is larger (a smaller query is
        beyond what it speaks for). A query between the smallest set's size and the size where sub-files stop
        being overconfident is taken for a whole small experiment, which the calibration did see: a truncated
        file of a large experiment that size still reads too sure (``benchmarks/evidence.py`` measures it).
    ceilings
        Per field, per size of :data:`SIZES`, the share of in-domain sub-files of about that size whose top
        label was right (non-decreasing with the size).
    one_chromosome
        Per field, per chromosome (by code), the same share for the sets' regions on that chromosome alone (which
        chromosome matters more than the number of regions: chrY alone tells little); the last entry is the
        share over all chromosomes, for one no set had. Empty when chromosomes are unknown or the reference sets
        span few chromosomes.
    chromosomes
        The universe's chromosomes, to tell a query's spread; ``None`` when unknown.
    """

    min_regions: int
    ceilings: Mapping[str, np.ndarray]
    one_chromosome: Mapping[str, np.ndarray]
    chromosomes: Chromosomes | None

    @classmethod
    def fit(
        cls,
        sub_files: SubFiles,
        probabilities: Mapping[str, np.ndarray],
        in_domain: np.ndarray,
        truth: Mapping[str, np.ndarray],
        chromosomes: Chromosomes | None,
        set_sizes: np.ndarray,
    ) -> Evidence:
        """From the calibrated answers for ``sub_files`` and each one's true label per field (-1: none).

        ``set_sizes``: the regions of each reference set the calibration was fitted on.
        """
        sizes = sub_files.tokens.sizes
        bins = np.minimum(np.searchsorted(SIZES, sizes, side="left"), SIZES.size - 1)
        ceilings, one_chromosome, overconfident = {}, {}, np.zeros(SIZES.size, bool)
        for field, stated in probabilities.items():
            known = (truth[field] >= 0) & in_domain
            chance = 1.0 / stated.shape[1]
            right = stated.argmax(axis=1) == truth[field]
            confidence = stated.max(axis=1)
            random = known & ~sub_files.one_chromosome
            ceilings[field], gap = _shares(bins[random], right[random], confidence[random], chance)
            overconfident |= gap > TOLERANCE
            if chromosomes is not None and np.median(sub_files.spread) >= MIN_SPREAD:
                single = known & sub_files.one_chromosome
                codes = sub_files.chromosome[single]
                n_codes = int(chromosomes.codes.max()) + 1
                n = np.bincount(codes, minlength=n_codes)
                hits = np.bincount(codes, weights=right[single].astype(np.float64), minlength=n_codes)
                pooled = (hits.sum() + PRIOR_COUNT * chance) / (n.sum() + PRIOR_COUNT)
                by_chromosome = (hits + PRIOR_COUNT * chance) / (n + PRIOR_COUNT)
                one_chromosome[field] = np.r_[np.where(n > 0, by_chromosome, pooled), pooled]
        # flagged below the first size from which no larger size is overconfident
        last = np.flatnonzero(overconfident)
        min_regions = 0 if last.size == 0 else int(SIZES[min(last[-1] + 1, SIZES.size - 1)])
        if len(set_sizes):
            min_regions = min(min_regions, int(np.min(set_sizes)))
        return cls(min_regions, ceilings, one_chromosome, chromosomes)

    def judge(self, queries: TokenRows) -> tuple[np.ndarray, np.ndarray]:
        """Per query, its verdict and the one chromosome it lies on (-1: several; a query may be both flagged).

        The verdict is :data:`FULL`, :data:`FEW_REGIONS` or :data:`ONE_CHROMOSOME` (an object array).
        """
        one = np.full(len(queries), -1, np.int64)
        if self.one_chromosome and self.chromosomes is not None:
            one = self.chromosomes.only(queries)
        verdict = np.where(one >= 0, ONE_CHROMOSOME, FULL).astype(object)
        verdict[queries.sizes < self.min_regions] = FEW_REGIONS
        return verdict, one

    def ceiling(self, field: str, sizes: np.ndarray, few: np.ndarray, one: np.ndarray) -> np.ndarray:
        """Per query, the highest probability its evidence earns in ``field`` (1 for full evidence)."""
        top = np.ones(sizes.size)
        top[few] = np.interp(np.log(np.maximum(sizes[few], 1)), np.log(SIZES), self.ceilings[field])
        on = one >= 0
        if field in self.one_chromosome and on.any():
            shares = self.one_chromosome[field]
            top[on] = np.minimum(top[on], shares[np.minimum(one[on], shares.size - 1)])
        return top

    def limit(self, field: str, probabilities: np.ndarray, sizes: np.ndarray, few: np.ndarray, one: np.ndarray):
        """``probabilities`` (queries × labels) with no top probability above its :meth:`ceiling` (a new array).

        A capped row is mixed with the uniform distribution: its labels keep their order (a weight of at least
        :data:`MIN_WEIGHT` stays its own, so a ceiling at chance does not tie them) and it still sums to 1.
        """
        top = self.ceiling(field, sizes, few, one)
        stated = probabilities.max(axis=1)
        uniform = 1.0 / probabilities.shape[1]
        over = stated > top
        weight = np.ones(stated.size)
        weight[over] = np.clip((top[over] - uniform) / np.maximum(stated[over] - uniform, 1e-12), MIN_WEIGHT, 1.0)
        return weight[:, None] * probabilities + (1.0 - weight[:, None]) * uniform

    # -- the saved form ---------------------------------------------------------------------------------------
    def to_record(self) -> dict:
        """Plain values and arrays (a part of the annotator's record)."""
        record = {
            "sizes": SIZES.copy(),
            "min_regions": int(self.min_regions),
            "ceilings": {f: np.asarray(v, np.float64) for f, v in self.ceilings.items()},
            "one_chromosome": {f: np.asarray(v, np.float64) for f, v in self.one_chromosome.items()},
        }
        if self.chromosomes is not None:
            record.update(chromosome_starts=self.chromosomes.starts, chromosome_codes=self.chromosomes.codes)
        return record

    @classmethod
    def from_record(cls, record: Mapping, scalar) -> Evidence:
        """The evidence :meth:`to_record` wrote (``scalar`` unwraps a stored scalar)."""
        if not np.array_equal(np.asarray(record["sizes"]).reshape(-1), SIZES):
            raise ValueError("evidence measured at other sub-file sizes")
        chromosomes = None
        if "chromosome_starts" in record:
            starts = np.asarray(record["chromosome_starts"], np.int64).reshape(-1)
            chromosomes = Chromosomes(starts, np.asarray(record["chromosome_codes"], np.int64).reshape(starts.size))

        ceilings = {str(f): np.asarray(v, np.float64).reshape(SIZES.size) for f, v in dict(record["ceilings"]).items()}
        one_chromosome = {
            str(f): np.asarray(v, np.float64).reshape(-1) for f, v in dict(record["one_chromosome"]).items()
        }
        return cls(int(scalar(record["min_regions"])), ceilings, one_chromosome, chromosomes)


def _shares(bins: np.ndarray, right: np.ndarray, confidence: np.ndarray, chance: float):
    """Per size bin, the share right and how far the mean confidence exceeds it (0 where the bin is empty).

    The share counts :data:`PRIOR_COUNT` more sub-files at chance, and never falls as the size grows.
    """
    n = np.bincount(bins, minlength=SIZES.size).astype(np.float64)
    hits = np.bincount(bins, weights=right.astype(np.float64), minlength=SIZES.size)
    stated = np.bincount(bins, weights=confidence, minlength=SIZES.size)
    share = np.maximum.accumulate((hits + PRIOR_COUNT * chance) / (n + PRIOR_COUNT))
    gap = np.divide(stated - hits, n, out=np.zeros(SIZES.size), where=n > 0)
    return share, gap
