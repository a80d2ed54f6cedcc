"""Retrieval metrics of the BEDspace evaluation protocol, on score matrices (rows: queries, columns: candidates)."""

from __future__ import annotations

import numpy as np


def ranks_of(scores: np.ndarray, relevant: np.ndarray) -> list[np.ndarray]:
    """1-based ranks of the relevant candidates of each query (ties broken by candidate order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(scores.shape[0], 0), axis=1)
    return [np.sort(position[i][relevant[i]]) for i in range(scores.shape[0])]


def average_precision(ranks: np.ndarray) -> float:
    """AP of one query from the sorted ranks of its relevant candidates."""
    if ranks.size == 0:
        return np.nan
    return float(np.mean(np.arange(1, ranks.size + 1) / ranks))


def r_precision(ranks: np.ndarray) -> float:
    """Precision at R, R = number of relevant candidates."""
    if ranks.size == 0:
        return np.nan
    return float(np.mean(ranks <= ranks.size))


def reciprocal_rank(ranks: np.ndarray) -> float:
    """1 / rank of the first relevant candidate."""
    return float(1.0 / ranks[0]) if ranks.size else np.nan


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """MAP, mean R-precision and MRR over queries that have at least one relevant candidate."""
    keep = relevant.any(axis=1)
    ranks = ranks_of(scores[keep], relevant[keep])
    return {
        "MAP": float(np.mean([average_precision(r) for r in ranks])) if ranks else np.nan,
        "R-precision": float(np.mean([r_precision(r) for r in ranks])) if ranks else np.nan,
        "MRR": float(np.mean([reciprocal_rank(r) for r in ranks])) if ranks else np.nan,
    }


def annotation_metrics(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """r2l: hit@1, hit@3, MRR and macro-F1 of the top-1 label; ``truth`` = column of each query's label."""
    relevant = np.zeros(scores.shape, bool)
    relevant[np.arange(truth.size), truth] = True
    rank = np.array([r[0] for r in ranks_of(scores, relevant)])
    predicted = np.argmax(scores, axis=1)
    return {
        "hit@1": float(np.mean(rank == 1)),
        "hit@3": float(np.mean(rank <= 3)),
        "MRR": float(np.mean(1.0 / rank)),
        "macro-F1": macro_f1(truth, predicted),
    }


def macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Unweighted mean F1 over the classes that occur in ``truth`` or ``predicted``."""
    scores = []
    for label in np.union1d(truth, predicted):
        tp = np.sum((predicted == label) & (truth == label))
        fp = np.sum((predicted == label) & (truth != label))
        fn = np.sum((predicted != label) & (truth == label))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))
