"""Ranking: turning a queries × candidates score matrix into the tidy table every search returns."""

from __future__ import annotations

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
) -> pd.DataFrame:
    """The ``top_k`` best candidates per query: ``query`` (when ``several``), ``rank``, ``name``, ``score``, metadata.

    ``drop_excluded`` leaves out candidates scored ``-inf`` (a query's own set). ``several`` (default: more than
    one query) keeps the ``query`` column, for a list of queries of which only one could be ranked.
    """
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
    if not (len(queries) > 1 if several is None else several):
        table = table.drop(columns="query")
    return table
