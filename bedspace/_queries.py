"""Region-set queries of a search: BED files, folders, patterns, interval frames, an AnnData, or stored sets by name.

Every form becomes the same :class:`Queries`: names, tokens on the model's universe, the share of each query's
regions in the universe, and, for a stored set asked for by name, its row (it is then never its own hit, and is
annotated from the other sets). Vectors are embedded only when a search needs them (r2l by the default
annotator does not).

Intervals of another genome build (``assembly=``) are lifted onto the reference's first
(:func:`bedspace._builds.lift_sets`); asked without it, a file or frame that lies in the universe poorly is checked
for the look of another build, and a warning says which and how to lift it (:func:`bedspace._builds.resembled_builds`).
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ._builds import lift_sets, lifting, resembled_builds, warn_resembled
from ._lazy import is_anndata
from ._similarity import unit_rows
from ._sources import is_pattern, matching_paths, resolve_sets
from ._warnings import warn
from .annotate import TokenMatrix
from .annotate._tokens import TokenRows


@dataclass
class Queries:
    """Region-set queries: names, tokens (their own CSR arrays), share of regions in the universe, own stored row."""

    names: list[str]
    tokens: TokenRows
    coverage: np.ndarray
    own: np.ndarray
    model: object  # the BEDSpaceModel that embeds them

    @cached_property
    def vectors(self) -> np.ndarray:
        """Unit vectors; a stored set asked for by name has the vector it was given."""
        vectors = unit_rows(self.model.embed_rows(self.tokens.indptr, self.tokens.indices))  # compact: rows 0 … n-1
        stored = np.flatnonzero(self.own >= 0)
        if stored.size:
            vectors[stored] = self.model.reference.unit_vectors[self.own[stored]]
        return vectors

    def rankable(self, *, by_vectors: bool) -> Queries:
        """Without queries that cannot be ranked: an error for one query, a warning for several.

        By their vectors, a query needs a region the model knows (a region vector); by their regions, any
        universe region.
        """
        empty = ~np.any(self.vectors != 0, axis=1) if by_vectors else self.tokens.sizes == 0
        empty &= self.own < 0
        if not empty.any():
            return self
        lost = [n for n, e in zip(self.names, empty, strict=True) if e]
        message = "overlap no region the model knows (an empty file, another genome, or another universe?)"
        if empty.all():
            raise ValueError(f"nothing to rank: the query {', '.join(map(repr, lost[:10]))} {message}")
        warn(f"{len(lost)} queries {message} and are left out: {lost[:10]}")
        keep = ~empty
        kept = Queries(
            [n for n, k in zip(self.names, keep, strict=True) if k], self.tokens.subset(np.flatnonzero(keep)).compact(),
            self.coverage[keep], self.own[keep], self.model,
        )  # fmt: skip
        if "vectors" in self.__dict__:
            kept.vectors = self.vectors[keep]
        return kept


def parse_queries(model, query, *, assembly: str | None = None) -> Queries:
    """The :class:`Queries` of any query form :func:`bedspace.tl.search` accepts.

    A path, or each item of a list: an existing file is always read as a file, even when a stored set has its
    name; a folder stands for its BED files (sorted by name); a string that is neither but a shell-style pattern
    (``"peaks/*.bed.gz"``) stands for the paths it matches, sorted, each as if given (a pattern that matches
    nothing is an error naming it, unless it is a stored set's name); any other string is a stored set's name.
    Queries are named by :func:`query_names`.

    ``assembly``: the genome build of the files' and frames' coordinates; when it is not the reference's they are
    lifted onto it before they are tokenized. Stored sets and an AnnData are on the universe already.
    """
    universe, reference = model.universe, model.reference
    n_regions = len(universe)
    lift_from = lifting(universe.assembly, assembly, what=f"the reference (universe {universe.name!r})")
    if is_anndata(query):
        if lift_from is not None:
            raise ValueError(
                f"assembly={assembly!r}: an AnnData query is tokens of the universe already and cannot be lifted; "
                "give its BED files (or lift them with bs.pp.liftover and tokenize them again)"
            )
        universe.check_same(query.var, what="the query AnnData")
        column = "frac_regions_in_universe"
        coverage = query.obs[column].to_numpy(np.float64) if column in query.obs else None
        tokens = TokenMatrix.of(query.X).read().compact()
        return _queries(model, query.obs_names.tolist(), tokens, coverage, None)
    if isinstance(query, pd.DataFrame):
        tokenized = _tokenized(universe, resolve_sets({"query": query}), lift_from)
        return _queries(model, ["query"], _rows(tokenized, n_regions), _coverage(tokenized), None)
    items = [query] if isinstance(query, str | os.PathLike) else list(query)
    named: list[tuple[str, Path | int]] = []
    for item in items:
        if isinstance(item, str) and not item.strip():  # an unset shell variable: not "the current folder"
            raise ValueError("a query is an empty name: give a BED file, a folder of them or a set of the collection")
        path = Path(item)
        if path.exists():
            named += _files_of(path)
            continue
        matches = matching_paths(item) if is_pattern(item) else []
        if matches:
            named += [file for match in matches for file in _files_of(match)]
            continue
        row = reference.position(str(item)) if reference is not None and isinstance(item, str) else None
        if row is None:
            if is_pattern(item):
                raise FileNotFoundError(
                    f"query {item!r}: no file matches this pattern (nor is it a region set of the collection)"
                )
            known = [] if reference is None else reference.names.tolist()
            close = difflib.get_close_matches(str(item), known, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise FileNotFoundError(
                f"query {str(item)!r} is neither a BED file nor a region set of the collection{hint}"
            )
        named.append((str(item), row))
    named = query_names(named)
    files = [(name, source) for name, source in named if isinstance(source, Path)]
    tokenized = _tokenized(universe, files, lift_from) if files else None
    file_tokens = _rows(tokenized, n_regions) if files else None
    file_coverage = _coverage(tokenized) if files else None
    stored_rows = np.asarray([source for _, source in named if not isinstance(source, Path)], dtype=np.int64)
    stored = None
    if stored_rows.size:
        stored = (
            reference.tokens.read(stored_rows)
            if reference.tokens is not None
            else TokenRows(
                np.zeros(stored_rows.size + 1, np.int64), np.zeros(0, np.int32), np.arange(stored_rows.size), n_regions
            )
        )
    parts, coverage, own, next_file, next_stored = [], [], [], 0, 0
    for _, source in named:
        if isinstance(source, Path):
            parts.append(file_tokens.subset([next_file]))
            coverage.append(file_coverage[next_file])
            own.append(-1)
            next_file += 1
        else:
            parts.append(stored.subset([next_stored]))
            coverage.append(np.nan)
            own.append(source)
            next_stored += 1
    tokens = TokenRows.stacked(parts, n_regions)
    return _queries(model, [name for name, _ in named], tokens, np.asarray(coverage), np.asarray(own))


def _tokenized(universe, named, lift_from: str | None):
    """Tokenize query sources onto the universe: lifted from ``lift_from`` first, else checked for another build."""
    if lift_from is not None:
        lifted, _ = lift_sets(named, source=lift_from, target=universe.assembly, what="query")
        return universe.tokenize(lifted)
    tokenized = universe.tokenize(named)
    found = resembled_builds(named, _coverage(tokenized), universe)
    if found:
        warn_resembled(found, universe.assembly)
    return tokenized


def _files_of(path: Path) -> list[tuple[str, Path]]:
    """An existing path as named query files: a folder's BED files (sorted), or the file itself."""
    return resolve_sets(path) if path.is_dir() else [(path.name, path)]


def query_names(named: list[tuple[str, Path | int]]) -> list[tuple[str, Path | int]]:
    """Each query once, under a name of its own.

    A query is named by its file's name (``a.bed.gz``) or its stored set's name. A file given twice (itself and
    in its folder, or matched by two patterns) is one query. Files of one name in different folders are named
    by their paths as given (``rep1/a.bed.gz``, ``rep2/a.bed.gz``), so that no two queries share a name.
    """
    seen, unique = set(), []
    for name, source in named:
        key = Path(os.path.abspath(source)) if isinstance(source, Path) else source
        if key not in seen:
            seen.add(key)
            unique.append((name, source))
    counts = Counter(name for name, _ in unique)
    named = [
        (str(source) if counts[name] > 1 and isinstance(source, Path) else name, source) for name, source in unique
    ]
    repeated = sorted(name for name, count in Counter(name for name, _ in named).items() if count > 1)
    if repeated:  # a stored set named like another query's path
        raise ValueError(f"two queries have the same name, {repeated[:10]}: give the files by other paths")
    return named


def _queries(model, names, tokens: TokenRows, coverage, own) -> Queries:
    n = len(names)
    return Queries(
        list(names),
        tokens,
        np.full(n, np.nan) if coverage is None else np.asarray(coverage, dtype=np.float64),
        np.full(n, -1, np.int64) if own is None else np.asarray(own, dtype=np.int64),
        model,
    )


def _rows(tokenized, n_regions: int) -> TokenRows:
    """Tokenized sets as :class:`~bedspace.annotate._tokens.TokenRows` (sorted regions, each once)."""
    indptr = np.asarray(tokenized.indptr, dtype=np.int64)
    return TokenRows(indptr, tokenized.indices, np.arange(indptr.size - 1, dtype=np.int64), n_regions)


def _coverage(tokenized) -> np.ndarray:
    """Share of each set's regions that overlap the universe (``nan`` for an empty set)."""
    return tokenized.qc()["frac_regions_in_universe"].to_numpy(np.float64)
