"""The three searches over a model and its collection: region set → labels, label → sets, set → sets."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd

from ._similarity import top_k as top_k_of
from ._similarity import unit_rows

if TYPE_CHECKING:
    from ._model import BEDSpaceModel

SearchType = Literal["r2l", "l2r", "r2r"]
SEARCH_TYPES = ("r2l", "l2r", "r2r")


def _normalised(text: str) -> str:
    """Loose form of a label for a second-chance match: case, spaces and punctuation ignored."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def resolve_label(labels: pd.DataFrame, query: str, field: str | None = None) -> int:
    """Row of ``labels`` meant by ``query``: ``"field=value"`` or a bare value unique across fields."""
    if field is not None and field not in set(labels["field"]):
        raise KeyError(f"no label field {field!r}; fields are {sorted(set(labels['field']))}")
    candidates = labels if field is None else labels[labels["field"] == field]
    names = candidates.index.tolist()
    prefix, sep, rest = query.partition("=")
    if sep and prefix in set(candidates["field"]):
        hits = np.flatnonzero((candidates["field"] == prefix).to_numpy() & (candidates["value"] == rest).to_numpy())
    else:
        hits = np.flatnonzero((candidates["value"] == query).to_numpy())
    if hits.size == 0:  # second chance: "T_cell" for "T cell", "dnase-seq" for "DNase-seq"
        loose = _normalised(query)
        hits = np.flatnonzero(
            [
                _normalised(v) == loose or _normalised(n) == loose
                for v, n in zip(candidates["value"], names, strict=True)
            ]
        )
    if hits.size == 1:
        return labels.index.get_loc(names[hits[0]])
    if hits.size > 1:
        options = ", ".join(repr(names[i]) for i in hits)
        raise ValueError(
            f"label {query!r} is ambiguous: it is a value of several fields ({options}); write it as field=value"
        )
    close = difflib.get_close_matches(query, names + candidates["value"].tolist(), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(map(repr, dict.fromkeys(close)))}" if close else ""
    raise KeyError(f"unknown label {query!r}{hint} (labels look like {names[0]!r})")


def query_vectors(model: BEDSpaceModel, query) -> tuple[list[str], np.ndarray]:
    """Names and unit vectors of region-set queries: collection set names, BED paths, frames or an AnnData."""
    if isinstance(query, ad.AnnData):
        return query.obs_names.tolist(), unit_rows(model.embed(query))
    if isinstance(query, pd.DataFrame):
        return ["query"], unit_rows(model.embed(query))
    items = [query] if isinstance(query, str | os.PathLike) else list(query)
    names: list[str] = []
    vectors: list[np.ndarray] = []
    known = model.set_names
    paths: list[Path] = []
    for item in items:
        if isinstance(item, str) and known is not None and item in known:
            names.append(item)
            vectors.append(model.set_vectors[known.get_loc(item)][None, :])
            continue
        path = Path(item)
        if not path.exists():
            close = difflib.get_close_matches(str(item), known.tolist(), n=3) if known is not None else []
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise FileNotFoundError(
                f"query {str(item)!r} is neither a region set of the collection nor a BED file{hint}"
            )
        paths.append(path)
    if paths:
        embedded = model.tokenize(paths[0] if len(paths) == 1 else paths)
        names += embedded.obs_names.tolist()
        vectors.append(unit_rows(model.embed(embedded)))
    return names, np.vstack(vectors) if vectors else np.zeros((0, model.dim), np.float32)


def run_search(
    model: BEDSpaceModel, query, *, search_type: SearchType, top_k: int = 10, field: str | None = None
) -> pd.DataFrame:
    """Rank labels or sets for a query; a tidy DataFrame (``rank``, ``name``, ``score``, ...)."""
    if search_type not in SEARCH_TYPES:
        raise ValueError(f"search_type must be one of {SEARCH_TYPES}, got {search_type!r}")
    if int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    labels = model.labels
    if search_type == "l2r":
        sets = _need_sets(model)
        queries = [query] if isinstance(query, str) else list(query)
        rows = [resolve_label(labels, str(q), field) for q in queries]
        names = labels.index[rows].tolist()
        scores = model.unit_label_vectors[rows] @ sets.T
        return _table(names, scores, top_k, model.set_names, model.set_metadata)
    names, vectors = query_vectors(model, query)
    if search_type == "r2l":
        in_field = np.ones(len(labels), bool) if field is None else (labels["field"] == field).to_numpy()
        if field is not None and not in_field.any():
            raise KeyError(f"no label field {field!r}; fields are {sorted(set(labels['field']))}")
        scores = vectors @ model.unit_label_vectors[in_field].T
        return _table(names, scores, top_k, labels.index[in_field], labels[in_field][["field", "value"]])
    sets = _need_sets(model)
    scores = vectors @ sets.T
    for i, name in enumerate(names):  # a set of the collection is not its own hit
        if name in model.set_names:
            scores[i, model.set_names.get_loc(name)] = -np.inf
    return _table(names, scores, top_k, model.set_names, model.set_metadata, drop_excluded=True)


def _need_sets(model: BEDSpaceModel) -> np.ndarray:
    if model.set_names is None:
        raise ValueError("this model carries no region sets to search; make it with BEDSpaceModel.from_anndata(adata)")
    return model.unit_set_vectors


def _table(
    queries: list[str],
    scores: np.ndarray,
    top_k: int,
    names: pd.Index,
    metadata: pd.DataFrame | None,
    drop_excluded: bool = False,
) -> pd.DataFrame:
    index, best = top_k_of(scores, top_k)
    n = index.shape[1]
    table = pd.DataFrame(
        {
            "query": np.repeat(np.asarray(queries, dtype=object), n),
            "rank": np.tile(np.arange(1, n + 1), len(queries)),
            "name": np.asarray(names, dtype=object)[index.ravel()],
            "score": best.ravel().astype(np.float64),
        }
    )
    if metadata is not None and len(metadata.columns):
        extra = metadata.iloc[index.ravel()].reset_index(drop=True)
        table = pd.concat([table, extra.drop(columns=[c for c in extra.columns if c in table.columns])], axis=1)
    if drop_excluded:
        table = table[np.isfinite(table["score"])].reset_index(drop=True)
        table["rank"] = table.groupby("query", sort=False).cumcount() + 1
    if len(queries) == 1:
        table = table.drop(columns="query")
    return table
