from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import bedspace as bs
from bedspace._metrics import annotation_metrics, average_precision, macro_f1, r_precision, retrieval_metrics


def test_metrics_by_hand():
    assert average_precision(np.array([1, 3])) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert r_precision(np.array([1, 3])) == 0.5
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1]])
    relevant = np.array([[False, False, True], [True, False, True]])
    # query 0: relevant at rank 2 -> AP 1/2, R-prec 0, RR 1/2; query 1: ranks 2 and 3 -> AP (1/2 + 2/3)/2
    metrics = retrieval_metrics(scores, relevant)
    assert metrics["MAP"] == pytest.approx((0.5 + (0.5 + 2 / 3) / 2) / 2)
    assert metrics["R-precision"] == pytest.approx((0 + 0.5) / 2)
    assert metrics["MRR"] == pytest.approx((0.5 + 0.5) / 2)
    r2l = annotation_metrics(np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3], [0.1, 0.2, 0.3]]), np.array([1, 2, 0]))
    assert r2l == pytest.approx(
        {
            "hit@1": 1 / 3,
            "hit@3": 1.0,
            "MRR": (1 + 1 / 2 + 1 / 3) / 3,
            "macro-F1": macro_f1(np.array([1, 2, 0]), np.array([1, 0, 2])),
        }
    )
    assert macro_f1(np.array([0, 0, 1]), np.array([0, 1, 1])) == pytest.approx((2 / 3 + 2 / 3) / 2)


def _hand_built():
    """A 'trained' collection made by hand: 4 regions, labels a/b; set vectors follow from region vectors."""
    regions = np.array([[1, 0], [1, 0.2], [0, 1], [0.1, 1]], dtype=np.float32)
    var = pd.DataFrame({"chrom": pd.Categorical(["c"] * 4), "start": [0, 10, 20, 30], "end": [10, 20, 30, 40]})
    var.index = [f"c:{s}-{e}" for s, e in zip(var["start"], var["end"], strict=True)]

    def collection(rows, labels):
        X = sp.csr_matrix(np.array(rows, dtype=np.float32))
        obs = pd.DataFrame({"kind": pd.Categorical(labels)}, index=[f"s{i}" for i in range(len(rows))])
        return ad.AnnData(X=X, obs=obs, var=var.copy())

    train = collection([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]], ["a", "a", "b", "b"])
    test = collection([[0, 1, 0, 0], [0, 0, 1, 0], [1, 1, 1, 0]], ["a", "b", "b"])
    sums = train.X @ regions
    train.varm["bedspace"] = regions
    train.obsm["X_bedspace"] = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    table = pd.DataFrame({"field": ["kind", "kind"], "value": ["a", "b"]}, index=["kind=a", "kind=b"])
    train.uns["bedspace"] = {"labels": table, "label_vectors": np.array([[1, 0], [0, 1]], dtype=np.float32)}
    return train, test


def test_evaluate_on_a_hand_built_case():
    train, test = _hand_built()
    table = bs.tl.evaluate(train, test, fields="kind", n_neighbors=1)
    value = table.set_index(["search", "metric", "method"])["value"]
    # test vectors: s0 ~ (1, .2) -> a; s1 = (0, 1) -> b; s2 = (2, 1.2) -> a (truth b): hit@1 2/3
    assert value["r2l", "hit@1", "bedspace"] == pytest.approx(2 / 3)
    assert value["r2l", "hit@3", "bedspace"] == 1.0
    assert value["r2l", "MRR", "bedspace"] == pytest.approx((1 + 1 + 0.5) / 3)
    # l2r label a: scores of s0, s1, s2 on a = (.98, 0, .86); relevant s0 -> AP 1; label b: relevant s1 (rank 1), s2
    # (b scores: .196, 1, .51 -> s2 rank 2): AP 1 -> MAP 1
    assert value["l2r", "MAP", "bedspace"] == pytest.approx(1.0)
    # overlap r2l with 1 neighbour: s0's tokens {1} nearest train s0 {0,1} (J .5) -> a (right); s1 {2} -> train s2
    # {2,3} (J .5) -> b (right); s2 {0,1,2} -> train s0 {0,1} (J 2/3) -> a (wrong)
    assert value["r2l", "hit@1", "overlap"] == pytest.approx(2 / 3)
    assert set(table["method"]) == {"bedspace", "overlap", "random"}
    assert 0 < value["r2l", "hit@1", "random"] < 1


def test_evaluate_real_data_beats_random(hg19_trained):
    train, test = hg19_trained
    table = bs.tl.evaluate(train, test, fields=["organ", "assay"])
    wide = table.pivot_table(index=["field", "search", "metric"], columns="method", values="value")
    assert (wide["bedspace"] > wide["random"]).loc[["organ", "assay"]].all().all() or (
        wide["bedspace"] >= wide["random"]
    ).all()
    assert wide.loc[("assay", "r2l", "hit@1"), "bedspace"] > 0.8
    assert wide.loc[("organ", "r2r", "MAP"), "bedspace"] > wide.loc[("organ", "r2r", "MAP"), "random"]


def test_split_is_stratified(hg19_adata):
    train, test = bs.pp.split(hg19_adata, stratify="organ", test_size=0.25, random_state=3)
    assert train.n_obs + test.n_obs == hg19_adata.n_obs
    assert not set(train.obs_names) & set(test.obs_names)
    counts = hg19_adata.obs["organ"].value_counts()
    held = test.obs["organ"].value_counts()
    assert held["blood"] == round(0.25 * counts["blood"])
    for organ in counts[counts == 1].index:
        assert organ not in set(test.obs["organ"])
    assert set(test.obs["organ"]) <= set(train.obs["organ"])
    again, _ = bs.pp.split(hg19_adata, stratify="organ", test_size=0.25, random_state=3)
    assert again.obs_names.equals(train.obs_names)
    with pytest.raises(KeyError, match="no column 'tissue'"):
        bs.pp.split(hg19_adata, stratify="tissue")
    with pytest.raises(ValueError, match="test_size"):
        bs.pp.split(hg19_adata, stratify="organ", test_size=1.5)
