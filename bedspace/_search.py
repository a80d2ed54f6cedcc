"""Ranking: turning a queries × candidates score matrix into the tidy table every search returns."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._similarity import top_k as top_k_of

SEARCH_TYPES = ("r2l", "l2r", "r2r")


def ranked_table(
    queries: list[str],
    scores: np.ndarray,
    top_k: int,
    names: pd.Index,
    metadata: pd.DataFrame | None,
    *,
    drop_excluded: bool = False,
    several: bool | None = None,
    parts: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The ``top_k`` best candidates per query: ``query`` (when ``several``), ``rank``, ``name``, ``score``, metadata.

    ``drop_excluded`` leaves out candidates scored ``-inf`` (a query's own set). ``several`` (default: more than
    one query) keeps the ``query`` column, for a list of queries of which only one could be ranked. ``parts``:
    more queries × candidates numbers (what the score is made of), each a column after ``score``.
    """
    index, best = top_k_of(scores, top_k)
    n = index.shape[1]
    rows = np.repeat(np.arange(len(queries)), n)
    table = pd.DataFrame(
        {
            "query": np.asarray(queries, dtype=object)[rows],
            "rank": np.tile(np.arange(1, n + 1), len(queries)),
            "name": np.asarray(names, dtype=object)[index.ravel()],
            "score": best.ravel().astype(np.float64),
            **{name: np.asarray(part, dtype=np.float64)[rows, index.ravel()] for name, part in (parts or {}).items()},
        }
    )
    if metadata is not None and len(metadata.columns):
        extra = metadata.iloc[index.ravel()].reset_index(drop=True)
        table = pd.concat([table, extra.drop(columns=[c for c in extra.columns if c in table.columns])], axis=1)
    if drop_excluded:
        table = table[np.isfinite(table["score"])].reset_index(drop=True)
        table["rank"] = table.groupby("query", sort=False).cumcount() + 1
    if not (len(queries) > 1 if several is None else several):
        table = table.drop(columns="query")
    return table


def annotation_table(
    queries: list[str],
    scores: dict[str, np.ndarray],
    probabilities: dict[str, np.ndarray],
    in_domain: np.ndarray,
    labels: dict[str, pd.DataFrame],
    top_k: int,
    *,
    min_probability: float = 0.0,
    several: bool,
) -> pd.DataFrame:
    """The default annotator's answer, per query and field: ``top_k`` labels by probability (by score without).

    Columns ``query`` (when ``several``), ``field``, ``rank`` (within the query and field), ``name``, ``value``,
    ``probability`` (when calibrated), ``score`` (the classifier's), ``in_domain``. Labels below ``min_probability`` are
    left out: a query may get no label in a field (abstention).
    """
    parts = []
    for field, field_scores in scores.items():
        frame = labels[field]
        probability = probabilities.get(field)
        order_by = field_scores if probability is None else probability
        index, _ = top_k_of(order_by, top_k)
        n = index.shape[1]
        flat = index.ravel()
        rows = np.repeat(np.arange(len(queries)), n)
        part = pd.DataFrame(
            {
                "query": np.asarray(queries, dtype=object)[rows],
                "field": field,
                "rank": np.tile(np.arange(1, n + 1), len(queries)),
                "name": frame.index.to_numpy(dtype=object)[flat],
                "value": frame["value"].to_numpy(dtype=object)[flat],
            }
        )
        if probability is not None:
            part["probability"] = np.take_along_axis(probability, index, axis=1).ravel()
        part["score"] = np.take_along_axis(field_scores, index, axis=1).ravel()
        part["in_domain"] = np.asarray(in_domain, bool)[rows]
        part["_query"] = rows
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    table = table.sort_values(["_query"], kind="stable").drop(columns="_query").reset_index(drop=True)
    if min_probability > 0:
        table = table[table["probability"] >= min_probability].reset_index(drop=True)
    if not several:
        table = table.drop(columns="query")
    return table
