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
    assert value["r2l", "hit@1", "bedspace-labels"] == pytest.approx(2 / 3)
    assert value["r2l", "hit@3", "bedspace-labels"] == 1.0
    assert value["r2l", "MRR", "bedspace-labels"] == pytest.approx((1 + 1 + 0.5) / 3)
    # l2r label a: scores of s0, s1, s2 on a = (.98, 0, .86); relevant s0 -> AP 1; label b: relevant s1 (rank 1), s2
    # (b scores: .196, 1, .51 -> s2 rank 2): AP 1 -> MAP 1
    assert value["l2r", "MAP", "bedspace-labels"] == pytest.approx(1.0)
    # overlap r2l with 1 neighbour: s0's tokens {1} nearest train s0 {0,1} (J .5) -> a (right); s1 {2} -> train s2
    # {2,3} (J .5) -> b (right); s2 {0,1,2} -> train s0 {0,1} (J 2/3) -> a (wrong)
    assert value["r2l", "hit@1", "overlap"] == pytest.approx(2 / 3)
    # enrichment (Fisher, universe of 4 regions): s0 {1} vs train s0 {0,1}: p = 1/2, all others p = 1 -> a (right);
    # s1 {2} -> train s2 {2,3} (p = 1/2) -> b (right); s2 {0,1,2}: train s0 p = 1/2, s1 p = 3/4, s2 and s3 p = 1
    # -> a (wrong)
    assert value["r2l", "hit@1", "enrichment"] == pytest.approx(2 / 3)
    # r2r by p-value, ties (p = 1, odds ratio 0) in training order: s0 ranks a's sets 1, 2 (AP 1); s1 ranks b's
    # at 1 and 4 (AP 3/4); s2 ranks them 3, 4 (AP (1/3 + 2/4) / 2 = 5/12)
    assert value["r2r", "MAP", "enrichment"] == pytest.approx((1 + 3 / 4 + 5 / 12) / 3)
    # l2r: label a puts s0 and s2 (rank 1, p = 1/2, tied: held-out order) first -> AP 1; label b: s1 first, then
    # s0 and s2 tied (rank 3, p = 1) -> s2 third -> AP (1 + 2/3) / 2
    assert value["l2r", "MAP", "enrichment"] == pytest.approx((1 + 5 / 6) / 2)
    assert set(table["method"]) == {"bedspace", "bedspace-labels", "overlap", "enrichment", "random"}
    # the default annotator (no calibration here: scores, not probabilities, and no ECE) fuses enrichment, overlap
    # and embedding neighbours: s0 and s1 are right by all three; s2 is wrong by enrichment and overlap
    assert value["r2l", "hit@1", "bedspace"] == pytest.approx(2 / 3)
    assert ("r2l", "ECE", "bedspace") not in value.index
    assert 0 < value["r2l", "hit@1", "random"] < 1
    assert table["method"].drop_duplicates().tolist() == [
        "bedspace",
        "bedspace-labels",
        "overlap",
        "enrichment",
        "random",
    ]


def test_evaluate_baselines_can_be_chosen():
    train, test = _hand_built()
    only = bs.tl.evaluate(train, test, fields="kind", baselines=())
    assert set(only["method"]) == {"bedspace", "bedspace-labels"}
    both = bs.tl.evaluate(train, test, fields="kind", baselines=["enrichment"], n_neighbors=1)
    assert set(both["method"]) == {"bedspace", "bedspace-labels", "enrichment"}
    full = bs.tl.evaluate(train, test, fields="kind", n_neighbors=1)
    pd.testing.assert_frame_equal(
        both[both["method"] == "enrichment"].reset_index(drop=True),
        full[full["method"] == "enrichment"].reset_index(drop=True),
    )
    with pytest.raises(ValueError, match=r"unknown baseline\(s\) \['lola'\]"):
        bs.tl.evaluate(train, test, fields="kind", baselines=["lola"])
    with pytest.raises(ValueError, match="n_neighbors must be >= 1"):
        bs.tl.evaluate(train, test, fields="kind", n_neighbors=0)
    with pytest.raises(KeyError, match="tissue"):
        bs.tl.evaluate(train, test, fields=["kind", "tissue"])


def test_evaluate_real_data_beats_random(hg19_trained):
    train, test = hg19_trained
    table = bs.tl.evaluate(train, test, fields=["organ", "assay"])
    wide = table.pivot_table(index=["field", "search", "metric"], columns="method", values="value")
    assert wide.loc[("organ", "r2l", "ECE"), "bedspace"] < 0.2  # calibrated probabilities (the fixture calibrates)
    wide = wide.drop(index="ECE", level="metric")
    assert (wide["bedspace"] > wide["random"]).loc[["organ", "assay"]].all().all() or (
        wide["bedspace"] >= wide["random"]
    ).all()
    assert wide.loc[("assay", "r2l", "hit@1"), "bedspace"] > 0.8
    assert wide.loc[("organ", "r2r", "MAP"), "bedspace"] > wide.loc[("organ", "r2r", "MAP"), "random"]
    # the untrained baselines are real competitors, above chance on every search (hit@3 of 3 assays is 1 for all)
    headline = wide.loc[[(f, s, m) for f in ("organ", "assay") for s, m in (("r2l", "hit@1"), ("l2r", "MAP"))]]
    for baseline in ("overlap", "enrichment"):
        assert (wide[baseline] >= wide["random"]).all() and (headline[baseline] > headline["random"]).all()


def test_split_is_stratified(slice_adata):
    train, test = bs.pp.split(slice_adata, stratify="organ", test_size=0.25, random_state=3)
    assert train.n_obs + test.n_obs == slice_adata.n_obs
    assert not set(train.obs_names) & set(test.obs_names)
    counts = slice_adata.obs["organ"].value_counts()
    held = test.obs["organ"].value_counts()
    assert held["blood"] == round(0.25 * counts["blood"])
    for organ in counts[counts == 1].index:
        assert organ not in set(test.obs["organ"])
    assert set(test.obs["organ"]) <= set(train.obs["organ"])
    again, _ = bs.pp.split(slice_adata, stratify="organ", test_size=0.25, random_state=3)
    assert again.obs_names.equals(train.obs_names)
    with pytest.raises(KeyError, match="no column 'tissue'"):
        bs.pp.split(slice_adata, stratify="tissue")
    with pytest.raises(ValueError, match="test_size"):
        bs.pp.split(slice_adata, stratify="organ", test_size=1.5)


def test_split_at_random_holds_out_a_share_of_all_sets(slice_adata):
    train, test = bs.pp.split(slice_adata, test_size=0.25, random_state=3)
    assert test.n_obs == round(0.25 * slice_adata.n_obs) and train.n_obs + test.n_obs == slice_adata.n_obs
    assert not set(train.obs_names) & set(test.obs_names)
    again, _ = bs.pp.split(slice_adata, stratify=None, test_size=0.25, random_state=3)
    assert again.obs_names.equals(train.obs_names)
    other, _ = bs.pp.split(slice_adata, test_size=0.25, random_state=4)
    assert not other.obs_names.equals(train.obs_names)
    # not stratified: over a few seeds, some organ is held out whole or not at all although it has sets to spare
    counts = slice_adata.obs["organ"].value_counts()
    unstratified = 0
    for seed in range(5):
        _, held = bs.pp.split(slice_adata, random_state=seed)
        shares = held.obs["organ"].value_counts().reindex(counts.index, fill_value=0)
        unstratified += int(((shares == 0) & (counts >= 2)).any() or ((shares == counts) & (counts >= 1)).any())
    assert unstratified > 0
    with pytest.raises(ValueError, match="fewer than two"):
        bs.pp.split(slice_adata[:1].copy())


REPEATED = {"dim": 16, "epochs": 3, "n_threads": 1}  # n_threads=1: bit-for-bit reproducible per seed
TRAINED = ["bedspace", "bedspace-labels", "starspace", "starspace-labels"]


@pytest.fixture(scope="module")
def repeated(slice_adata):
    # on the bundled chr21–22 slice (the same 171 real sets and labels): the mechanics of the repeats, in seconds
    uns_before = set(slice_adata.uns)
    result = bs.tl.evaluate_repeated(
        slice_adata,
        fields=["organ", "assay"],
        n_splits=2,
        seeds=(0, 1),
        configurations={"bedspace": {}, "starspace": bs.tl.STARSPACE_COMPATIBLE},
        train_kwargs=REPEATED,
    )
    assert set(slice_adata.uns) == uns_before and not slice_adata.varm  # the collection is left as it was
    return result


def test_repeated_evaluation_runs_every_split_and_seed(repeated):
    runs = repeated.runs
    assert list(runs.columns) == ["split", "seed", "field", "search", "metric", "method", "value"]
    assert runs["method"].drop_duplicates().tolist() == [*TRAINED, "overlap", "enrichment", "random"]
    for method in TRAINED:
        trained = runs[runs["method"] == method]
        assert set(zip(trained["split"], trained["seed"], strict=True)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    baseline = runs[runs["method"].isin(["overlap", "enrichment", "random"])]
    assert baseline["seed"].isna().all() and set(baseline["split"]) == {0, 1}  # once per split: they are not trained
    # per run, every field × search × metric once
    per_run = runs.groupby(["split", "seed", "method"], dropna=False).size()
    calibrated = per_run.index.get_level_values("method") == "bedspace"  # its r2l also reports the ECE
    assert (per_run[calibrated] == 2 * (5 + 2 + 3)).all() and (per_run[~calibrated] == 2 * (4 + 2 + 3)).all()
    # the StarSpace-compatible run is a different model, not a copy of the default
    wide = runs.pivot_table(index=["split", "seed", "field", "search", "metric"], columns="method", values="value")
    assert not np.allclose(wide["bedspace-labels"], wide["starspace-labels"])
    ece = runs[(runs["metric"] == "ECE")]
    assert set(ece["method"]) == {"bedspace"} and ece["value"].between(0, 1).all()
    # pooled over the runs' held-out annotations: one number per calibrated method and field
    pooled = repeated.calibration_error()
    assert pooled[["method", "field"]].values.tolist() == [["bedspace", "organ"], ["bedspace", "assay"]]
    assert (pooled["n"] == repeated.predictions.groupby("field", sort=False).size().to_numpy()).all()
    assert pooled["ECE"].between(0, 1).all() and pooled["accuracy"].between(0, 1).all()
    assert pooled["ECE_if_calibrated"].between(0, 1).all()


def test_the_calibration_floor_is_the_binning_noise_of_calibrated_answers():
    stated = np.r_[np.full(400, 0.5), np.full(100, 1.0)]
    predictions = pd.DataFrame(
        {
            "method": "m",
            "field": "f",
            "confidence": stated,
            "correct": np.r_[np.arange(400) % 2 == 0, np.ones(100, bool)],
        }
    )
    result = bs.tl.RepeatedEvaluation(runs=pd.DataFrame(), summary=pd.DataFrame(), predictions=predictions)
    pooled = result.calibration_error(n_draws=300)
    # these answers are right exactly as often as stated: ECE 0; drawn ones stray by the binomial noise of 400
    # coin flips, weighted by the bin's share (0.8 × E|mean - 0.5| ≈ 0.8 × 0.02)
    assert pooled["ECE"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert 0.008 < pooled["ECE_if_calibrated"].iloc[0] < 0.025
    assert pooled["ECE_if_calibrated"].iloc[0] == result.calibration_error(n_draws=300)["ECE_if_calibrated"].iloc[0]


def test_repeats_of_one_held_out_set_share_the_calibration_floors_draw():
    rng = np.random.default_rng(0)
    stated = rng.uniform(0.3, 1.0, 120)
    once = pd.DataFrame({"method": "m", "field": "f", "confidence": stated, "correct": rng.random(120) < stated})
    # two training seeds of one split annotate the same 120 sets alike: evidence of 120 annotations, not 240
    twice = pd.concat([once.assign(split=0, seed=seed, set=[f"s{i}" for i in range(120)]) for seed in (0, 1)])

    def floor(predictions):
        result = bs.tl.RepeatedEvaluation(runs=pd.DataFrame(), summary=pd.DataFrame(), predictions=predictions)
        return result.calibration_error(n_draws=300)["ECE_if_calibrated"].iloc[0]

    assert floor(twice) == pytest.approx(floor(once), abs=1e-12)
    # drawn independently, the repeats would halve the binning noise's variance: a floor too low to read against
    independent = twice.assign(set=[f"s{i}" for i in range(240)])
    assert floor(independent) < 0.85 * floor(twice)


def test_repeated_evaluation_can_hold_out_sets_at_random(slice_adata):
    result = bs.tl.evaluate_repeated(
        slice_adata, fields=["assay"], stratify=False, n_splits=1, seeds=[0], baselines=(), train_kwargs=REPEATED
    )
    _, held_out = bs.pp.split(slice_adata, stratify=None, random_state=0)
    # every assay has sets in training, so every held-out set is annotated, and only those
    assert sorted(result.predictions["set"]) == sorted(held_out.obs_names)


def test_repeated_summary_is_the_runs_aggregated(repeated):
    runs, summary = repeated.runs, repeated.summary
    keys = ["field", "search", "metric", "method"]
    expected = runs.groupby(keys)["value"].agg(["mean", "std", "count"])
    got = summary.set_index(keys)
    np.testing.assert_allclose(got["mean"], expected.loc[got.index, "mean"])
    np.testing.assert_allclose(got["sd"], expected.loc[got.index, "std"])
    assert (got.xs("bedspace", level="method")["n"] == 4).all() and (got.xs("overlap", level="method")["n"] == 2).all()
    # the seed part: sd between the two seeds of a split, pooled over splits; none for the untrained baselines
    one = runs[(runs["method"] == "bedspace") & (runs["field"] == "organ") & (runs["metric"] == "hit@1")]
    seed_var = one.groupby("split")["value"].var().mean()
    split_sd = one.groupby("split")["value"].mean().std()
    row = got.loc[("organ", "r2l", "hit@1", "bedspace")]
    assert row["sd_seed"] == pytest.approx(np.sqrt(seed_var)) and row["sd_split"] == pytest.approx(split_sd)
    assert got.xs("enrichment", level="method")["sd_seed"].isna().all()
    # the trained method does at least as well as chance on every number, averaged over runs (hit@3 of 3 assays
    # is 1 for every method), and better on the headline ones
    means = summary.pivot_table(index=["field", "search", "metric"], columns="method", values="mean")
    means = means.drop(index="ECE", level="metric")  # the calibration error has no random counterpart
    assert (means["bedspace"] >= means["random"]).all()
    headline = means.loc[[(f, s, m) for f in ("organ", "assay") for s, m in (("r2l", "hit@1"), ("r2r", "MAP"))]]
    assert (headline["bedspace"] > headline["random"]).all()


def test_a_repeated_run_is_the_single_evaluation_of_that_split_and_seed(repeated, slice_adata):
    train, test = bs.pp.split(slice_adata, stratify="organ", test_size=0.25, random_state=1)
    bs.tl.train(train, labels=["organ", "assay"], random_state=1, **REPEATED)
    single = bs.tl.evaluate(train, test, fields=["organ", "assay"], random_state=1)
    runs = repeated.runs
    from_repeated = runs[(runs["split"] == 1) & ((runs["seed"] == 1) | runs["seed"].isna())]
    from_repeated = from_repeated[~from_repeated["method"].str.startswith("starspace")]
    pd.testing.assert_frame_equal(
        from_repeated[["field", "search", "metric", "method", "value"]].reset_index(drop=True),
        single.reset_index(drop=True),
    )


def test_repeated_table_shows_mean_and_sd(repeated):
    table = repeated.table({"r2l": "hit@1", "r2r": "MAP"}, digits=2)
    assert table.index.tolist() == [
        ("organ", "r2l", "hit@1"),
        ("organ", "r2r", "MAP"),
        ("assay", "r2l", "hit@1"),
        ("assay", "r2r", "MAP"),
    ]
    assert table.columns.tolist() == [*TRAINED, "overlap", "enrichment", "random"]
    row = repeated.summary.set_index(["field", "search", "metric", "method"]).loc[("assay", "r2l", "hit@1", "bedspace")]
    assert table.loc[("assay", "r2l", "hit@1"), "bedspace"] == f"{row['mean']:.2f} ± {row['sd']:.2f}"
    with pytest.raises(ValueError, match="unknown search"):
        repeated.table({"r2x": "MAP"})


def test_repeated_evaluation_checks_its_options(slice_adata):
    def run(**options):
        bs.tl.evaluate_repeated(slice_adata, **({"fields": ["organ"]} | options))

    with pytest.raises(TypeError, match="seeds must be a sequence"):
        run(seeds=3)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        run(seeds=(1, 1))
    with pytest.raises(ValueError, match="n_splits must be an integer >= 1"):
        run(n_splits=0)
    with pytest.raises(ValueError, match=r"\['random_state'\] are set by evaluate_repeated"):
        run(train_kwargs={"random_state": 3})
    with pytest.raises(ValueError, match=r"\['labels'\] are set by evaluate_repeated"):
        run(configurations={"mine": {"labels": ["organ"]}})
    with pytest.raises(ValueError, match=r"\['overlap'\] are taken by baselines"):
        run(configurations={"overlap": {}})
    with pytest.raises(ValueError, match="configurations is empty"):
        run(configurations={})
    with pytest.raises(ValueError, match="unknown baseline"):
        run(baselines=["jaccard"])
    with pytest.raises(KeyError, match="tissue"):
        run(fields=["tissue"])
    with pytest.raises(KeyError, match="tissue"):
        run(labels=["tissue"])
    with pytest.raises(TypeError, match="stratify must be a column name"):
        run(stratify=True)
