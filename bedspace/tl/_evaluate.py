"""``bs.tl.evaluate``: held-out retrieval quality of the embedding, beside a random and an overlap baseline."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._metrics import annotation_metrics, retrieval_metrics
from .._model import BEDSpaceModel
from .._similarity import unit_rows

METHODS = ("bedspace", "overlap", "random")


def jaccard(test: sp.csr_matrix, train: sp.csr_matrix) -> np.ndarray:
    """Jaccard similarity of token sets, test × train (what interval-overlap search tools compute)."""
    test = (test > 0).astype(np.float32)
    train = (train > 0).astype(np.float32)
    shared = np.asarray((test @ train.T).todense())
    sizes_test = np.asarray(test.sum(axis=1)).ravel()
    sizes_train = np.asarray(train.sum(axis=1)).ravel()
    union = sizes_test[:, None] + sizes_train[None, :] - shared
    return np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)


def knn_vote(similarity: np.ndarray, train_codes: np.ndarray, n_labels: int, k: int) -> np.ndarray:
    """Label scores by a similarity-weighted vote of the ``k`` most similar training sets."""
    k = min(k, similarity.shape[1])
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    votes = np.zeros((similarity.shape[0], n_labels))
    for i, row in enumerate(nearest):
        codes = train_codes[row]
        ok = codes >= 0
        np.add.at(votes[i], codes[ok], similarity[i, row[ok]] + 1e-9)
    return votes


def evaluate(
    train: ad.AnnData,
    test: ad.AnnData,
    *,
    fields: list[str] | str,
    key: str = "bedspace",
    n_neighbors: int = 5,
    n_random: int = 20,
    random_state: int = 0,
) -> pd.DataFrame:
    """Measure r2l, l2r and r2r retrieval on held-out sets, for the model and two baselines.

    The protocol of BEDspace's evaluation: held-out sets were never trained on.

    * **r2l** (annotate): for each held-out set, rank the field's labels. ``hit@1``, ``hit@3``, ``MRR``, and
      ``macro-F1`` of the top-1 label.
    * **l2r** (find sets for a label): for each label of the field carried by a held-out set, rank the held-out
      sets. ``MAP`` and ``R-precision`` (relevant: sets carrying the label).
    * **r2r** (find similar sets): for each held-out set, rank the training sets. ``MAP``, ``R-precision``,
      ``MRR`` (relevant: training sets with the same value in the field).

    Baselines on the same split: ``random`` (uniform random scores, averaged over ``n_random`` draws) and
    ``overlap`` (Jaccard similarity of the sets' region tokens; for r2l and l2r a Jaccard-weighted vote of the
    ``n_neighbors`` most similar training sets). Held-out sets whose label no training set has are skipped for
    that field.

    Parameters
    ----------
    train
        The collection trained with :func:`bedspace.tl.train` (key ``key``).
    test
        Held-out sets tokenized on the same universe (e.g. the second part of :func:`bedspace.pp.split`).
    fields
        ``.obs`` columns to evaluate (typically the label fields).
    key
        The ``key_added`` of :func:`~bedspace.tl.train`.
    n_neighbors
        Neighbours voting in the overlap baseline.
    n_random, random_state
        Draws and seed of the random baseline.

    Returns
    -------
    Long-form DataFrame with columns ``field``, ``search`` (r2l, l2r, r2r), ``metric``, ``method``
    (bedspace, overlap, random) and ``value``; ``.pivot_table(index=["field", "search", "metric"],
    columns="method", values="value")`` gives the side-by-side table.
    """
    fields = [fields] if isinstance(fields, str) else list(fields)
    missing = [f for f in fields if f not in train.obs.columns or f not in test.obs.columns]
    if missing:
        raise KeyError(f"field(s) {missing} are not .obs columns of both train and test")
    model = BEDSpaceModel.from_anndata(train, key=key)
    test_vectors = unit_rows(model.embed(test))
    train_vectors = model.unit_set_vectors
    overlap = jaccard(test.X, train.X)
    rng = np.random.default_rng(random_state)
    rows = []

    for field in fields:
        in_field = (model.labels["field"] == field).to_numpy()
        values = model.labels["value"].to_numpy()[in_field]
        code_of = {v: i for i, v in enumerate(values)}
        test_codes = np.array([code_of.get(str(v), -1) if pd.notna(v) else -1 for v in test.obs[field]])
        train_codes = np.array([code_of.get(str(v), -1) if pd.notna(v) else -1 for v in train.obs[field]])
        known = test_codes >= 0
        if not known.any():
            continue
        label_vectors = model.unit_label_vectors[in_field]
        truth = test_codes[known]
        present = np.unique(truth)
        scores = {
            "bedspace": {
                "r2l": test_vectors[known] @ label_vectors.T,
                "r2r": test_vectors[known] @ train_vectors.T,
            },
            "overlap": {
                "r2l": knn_vote(overlap[known], train_codes, len(values), n_neighbors),
                "r2r": overlap[known],
            },
        }
        for method in ("bedspace", "overlap"):
            r2l = scores[method]["r2l"]
            results = {
                "r2l": annotation_metrics(r2l, truth),
                "l2r": _l2r(r2l, truth, present),
                "r2r": _r2r(scores[method]["r2r"], truth, train_codes),
            }
            rows += _rows(field, method, results)
        draws = []
        for _ in range(n_random):
            r2l = rng.random((truth.size, len(values)))
            draws.append(
                {
                    "r2l": annotation_metrics(r2l, truth),
                    "l2r": _l2r(r2l, truth, present),
                    "r2r": _r2r(rng.random((truth.size, train.n_obs)), truth, train_codes),
                }
            )
        mean = {s: {m: float(np.nanmean([d[s][m] for d in draws])) for m in draws[0][s]} for s in draws[0]}
        rows += _rows(field, "random", mean)
    return pd.DataFrame(rows, columns=["field", "search", "metric", "method", "value"])


def _l2r(set_label_scores: np.ndarray, truth: np.ndarray, present: np.ndarray) -> dict[str, float]:
    """Labels as queries over the held-out sets (transpose of the r2l scores)."""
    relevant = truth[None, :] == present[:, None]
    metrics = retrieval_metrics(set_label_scores[:, present].T, relevant)
    return {"MAP": metrics["MAP"], "R-precision": metrics["R-precision"]}


def _r2r(scores: np.ndarray, truth: np.ndarray, train_codes: np.ndarray) -> dict[str, float]:
    relevant = truth[:, None] == train_codes[None, :]
    return retrieval_metrics(scores, relevant)


def _rows(field: str, method: str, results: dict[str, dict[str, float]]) -> list[tuple]:
    return [
        (field, search, metric, method, value)
        for search, metrics in results.items()
        for metric, value in metrics.items()
    ]
