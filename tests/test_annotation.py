"""The default r2l annotator: the kernel classifier by hand, calibration and domain on the real collection."""

from __future__ import annotations

import gzip
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import bedspace as bs
from bedspace.annotate import RegionAnnotator, TokenMatrix
from bedspace.annotate import _estimator as estimator
from bedspace.annotate._baselines import label_enrichment
from bedspace.annotate._estimator import flatten, stratified_folds, unflatten
from bedspace.annotate._kernel import compare, token_cosine
from bedspace.annotate._ridge import (
    BALANCE_POWERS,
    MAX_LIFT,
    FieldClassifier,
    KernelClassifier,
    _balanced_label_weights,
    _fitted_rows,
)

FIELDS = ["organ", "cell_class", "assay"]


# -- by hand ----------------------------------------------------------------------------------------------------
def _random_sets(n_sets=30, n_regions=400, seed=0):
    """Three groups of sets, each drawing most of its regions from its own block of the universe."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n_sets) % 3
    dense = np.zeros((n_sets, n_regions), np.float32)
    for i, label in enumerate(codes):
        own = rng.choice(np.arange(label * 100, label * 100 + 150), 40, replace=False)
        noise = rng.choice(n_regions, 20, replace=False)
        dense[i, own] = dense[i, noise] = 1
    return sp.csr_matrix(dense), codes


def test_token_cosine_by_hand():
    shared = np.array([[2.0, 0.0]])
    np.testing.assert_allclose(token_cosine(shared, np.array([4.0]), np.array([4.0, 0.0])), [[0.5, 0.0]])


def test_leave_one_out_is_exactly_a_refit_without_the_set():
    tokens, codes = _random_sets()
    sizes = np.diff(tokens.indptr).astype(np.float64)
    kernel = token_cosine((tokens @ tokens.T).toarray(), sizes, sizes)
    whole = FieldClassifier.fit(kernel, codes, 4, np.arange(codes.size))  # label 3 has no set: ranked last
    assert np.isfinite(whole.leave_one_out).all()
    np.testing.assert_allclose(whole.leave_one_out[:, 3], whole.leave_one_out[:, :3].min(axis=1) - 1)
    for i in (0, 7, 29):
        others = np.flatnonzero(np.arange(codes.size) != i)
        refit = FieldClassifier.fit(kernel[np.ix_(others, others)], codes[others], 4, others)
        if refit.alpha == whole.alpha:  # the same strength: the shortcut is the refit, to round-off
            # (each with its own label weights: the shares differ by the set left out)
            np.testing.assert_allclose(
                whole.leave_one_out[i, :3] / whole.label_weights[:3],
                refit.scores_of(kernel[[i]][:, others])[0, :3] / refit.label_weights[:3],
            )
    assert np.mean(whole.leave_one_out.argmax(axis=1) == codes) > 0.9  # the groups are easy to tell apart


def test_rare_labels_are_weighted_up_as_far_as_leave_one_out_says():
    codes = np.repeat([0, 1], [6, 2])
    shares = np.array([0.75, 0.25])
    # the common label's sets are clear; the rare label's lose narrowly to the common label, unweighted
    leave_one_out = np.array([[0.9, 0.1]] * 6 + [[0.5, 0.4]] * 2)
    power, weights = _balanced_label_weights(leave_one_out, codes, shares, np.array([True, True]))
    # the rare label's sets come right once 0.4 * 4**p > 0.5 * (4/3)**p, i.e. p > 0.203: the smallest power that does
    assert power == min(p for p in BALANCE_POWERS if p > 0.203)
    np.testing.assert_allclose(weights, shares**-power)
    assert ((leave_one_out * weights).argmax(axis=1) == codes).all()
    # equal shares: every power gives the same answers, and the plain regression (0) is kept
    assert _balanced_label_weights(leave_one_out, codes, np.array([0.5, 0.5]), np.array([True, True]))[0] == 0.0
    # a label no set carries is never chosen, whatever its weight
    three = np.c_[leave_one_out, np.full(8, 5.0)]
    power, weights = _balanced_label_weights(three, codes, np.r_[shares, 0.0], np.array([True, True, False]))
    assert weights[2] == 1.0 and power > 0


def test_uniformly_weaker_overlaps_do_not_change_the_answer():
    """A noisier copy of a set overlaps everything less: its scores must not collapse to the commonest label."""
    tokens, codes = _random_sets()
    sizes = np.diff(tokens.indptr).astype(np.float64)
    kernel = token_cosine((tokens @ tokens.T).toarray(), sizes, sizes)
    fitted = np.arange(1, codes.size)  # set 0 is the query
    classifier = FieldClassifier.fit(kernel[np.ix_(fitted, fitted)], codes[fitted], 3, fitted)
    row = kernel[[0]][:, fitted]
    weak = row * (0.5 * classifier.typical_best / row.max())
    for fainter in (weak, 0.6 * weak):  # lifted 2 and 3.3 times: within MAX_LIFT
        np.testing.assert_allclose(classifier.predict(fainter), classifier.predict(weak))
    assert classifier.predict(weak).argmax() == codes[0]


def test_overlaps_far_weaker_than_typical_are_lifted_only_so_far():
    """A query sharing next to nothing with every set is not a noisy copy: its chance overlaps are not amplified."""
    tokens, codes = _random_sets()
    sizes = np.diff(tokens.indptr).astype(np.float64)
    kernel = token_cosine((tokens @ tokens.T).toarray(), sizes, sizes)
    fitted = np.arange(1, codes.size)
    classifier = FieldClassifier.fit(kernel[np.ix_(fitted, fitted)], codes[fitted], 3, fitted)
    row = kernel[[0]][:, fitted]
    faint = row * (0.01 * classifier.typical_best / row.max())  # would need a 100-fold lift
    np.testing.assert_allclose(classifier.predict(faint), classifier.scores_of(faint * MAX_LIFT))
    spread = np.ptp(classifier.predict(faint)), np.ptp(classifier.predict(faint * 25))  # the latter fully lifted
    assert spread[0] < 0.5 * spread[1]  # nearer the labels' shares than a fully lifted row


def _fit(tokens, codes: dict, **options) -> RegionAnnotator:
    """An annotator fitted on ``tokens`` with label codes per field (labels named by their code)."""
    names = {f: [f"{f}={i}" for i in range(int(np.max(c)) + 1)] for f, c in codes.items()}
    return RegionAnnotator(**options).fit(tokens, codes, names)


def _classifier(tokens, codes: dict, n_labels: dict, **options):
    options = {"max_sets": 2000, "random_state": 0} | options
    return KernelClassifier.fit(TokenMatrix.of(tokens), codes, n_labels, **options)


def test_an_estimator_in_scikit_learns_conventions():
    tokens, codes = _random_sets()
    annotator = RegionAnnotator(calibrate=False)
    assert not annotator.is_fitted and "unfitted" in repr(annotator)
    with pytest.raises(ValueError, match="not fitted yet"):
        annotator.annotate(tokens)
    assert annotator.fit(tokens, {"group": codes}, {"group": ["a", "b", "c"]}) is annotator  # fit returns self
    fitted = [name for name in vars(annotator) if name.endswith("_") and not name.startswith("_")]
    assert {"classifier_", "codes_", "priors_", "calibrators_", "min_log_odds_"} <= set(fitted)
    assert (annotator.predict(tokens)["group"] == np.array(["a", "b", "c"])[codes]).all()
    with pytest.raises(ValueError, match="no probabilities"):
        annotator.predict_proba(tokens)  # fitted without calibration: scores only
    for bad in ({"max_sets": 0}, {"max_queries": -1}, {"n_folds": 1}, {"calibrate": "yes"}, {"random_state": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RegionAnnotator(**bad)  # options are checked once, when it is made
    with pytest.raises(ValueError, match="codes for 30 sets"):
        annotator.fit(tokens, {"group": codes[:5]}, {"group": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="universe regions"):
        annotator.annotate(tokens[:, :10])


def test_a_stored_set_is_annotated_from_the_others():
    tokens, codes = _random_sets()
    annotator = _fit(tokens, {"group": codes}, calibrate=False)
    left_out = annotator.annotate(tokens, own=np.arange(codes.size))
    np.testing.assert_allclose(left_out.scores["group"], annotator.classifier_.fields["group"].leave_one_out)
    np.testing.assert_allclose(annotator.reference_annotation().scores["group"], left_out.scores["group"])
    as_new = annotator.annotate(tokens)  # each set among the reference: it fits itself
    assert (as_new.scores["group"].argmax(axis=1) == codes).all()
    comparison = compare(tokens[:2], tokens, own=np.array([0, -1]))
    assert np.isfinite(comparison.best_log_odds).all()
    assert comparison.best_log_odds[1] > comparison.best_log_odds[0]  # set 1 may match itself, set 0 may not


def test_unlabelled_sets_are_not_fitted_and_a_sample_keeps_every_label():
    tokens, codes = _random_sets()
    codes = codes.copy()
    codes[:4] = -1
    classifier, _ = _classifier(tokens, {"group": codes}, {"group": 3})
    assert classifier.fields["group"].rows.tolist() == np.flatnonzero(codes >= 0).tolist()
    skewed = np.r_[np.zeros(50, int), [1, 2, 2], -np.ones(3, int)]
    picked = _fitted_rows(skewed, 6, random_state=0)
    assert picked.size == 6 and set(skewed[picked]) == {0, 1, 2}
    np.testing.assert_array_equal(_fitted_rows(skewed, 100, random_state=0), np.flatnonzero(skewed >= 0))


def test_one_sample_serves_every_field_and_keeps_every_label():
    rng = np.random.default_rng(0)
    n = 300
    tokens = sp.csr_matrix((rng.random((n, 400)) < 0.05).astype(np.float32))
    organ = np.r_[np.zeros(280, int), np.repeat([1, 2, 3, 4], 5)]  # one big label, four small ones
    assay = rng.integers(0, 3, n)
    assay[:10] = -1  # unlabelled in this field only
    classifier, _ = _classifier(tokens, {"organ": organ, "assay": assay}, {"organ": 5, "assay": 3}, max_sets=40)
    organ_rows, assay_rows = classifier.fields["organ"].rows, classifier.fields["assay"].rows
    fitted = np.union1d(organ_rows, assay_rows)
    assert fitted.size <= 40  # one kernel of at most max_sets sets, not one sample per field
    assert set(organ[organ_rows]) == {0, 1, 2, 3, 4} and set(assay[assay_rows]) == {0, 1, 2}
    assert (assay[assay_rows] >= 0).all() and np.isin(assay_rows, organ_rows).all()
    # the fitted sets' kernel is the one of the sample alone
    alone, _ = _classifier(tokens[organ_rows], {"organ": organ[organ_rows]}, {"organ": 5})
    np.testing.assert_allclose(classifier.fields["organ"].coefficients, alone.fields["organ"].coefficients)


def test_a_query_is_compared_with_the_fitted_sets_only(monkeypatch):
    rng = np.random.default_rng(1)
    n = 300
    tokens = sp.csr_matrix((rng.random((n, 400)) < 0.05).astype(np.float32))
    organ = np.r_[np.zeros(280, int), np.repeat([1, 2, 3, 4], 5)]
    annotator = _fit(tokens, {"organ": organ}, max_sets=40, calibrate=False)
    classifier = annotator.classifier_
    fitted = classifier.fields["organ"].rows
    np.testing.assert_array_equal(classifier.compared_rows, fitted)
    not_fitted = np.setdiff1d(np.arange(n), fitted)
    queries = np.r_[fitted[:3], not_fitted[:3]]  # three fitted sets (left out) and three other sets of it
    seen = []
    original = estimator.overlap_counts
    monkeypatch.setattr(estimator, "overlap_counts", lambda q, r: seen.append(r) or original(q, r))
    got = annotator.annotate(tokens[queries], own=queries)
    assert seen and all(len(reference) == fitted.size for reference in seen)  # never the 300 sets, only the 40
    monkeypatch.undo()
    # the same as comparing with every set and keeping the fitted sets' columns
    everything = compare(tokens[queries], tokens)
    expected = classifier.fields["organ"].predict(everything.kernel[:, fitted])
    expected[:3] = classifier.fields["organ"].leave_one_out[:3]
    np.testing.assert_allclose(got.scores["organ"], expected)
    log_odds = np.array([compare(tokens[[q]], tokens[np.setdiff1d(fitted, [q])]).best_log_odds[0] for q in queries])
    np.testing.assert_allclose(got.best_log_odds, log_odds)


def test_the_fit_compares_the_fitted_sets_as_annotate_would():
    rng = np.random.default_rng(2)
    n = 120
    tokens = sp.csr_matrix((rng.random((n, 300)) < 0.08).astype(np.float32))
    organ, assay = rng.integers(0, 4, n), rng.integers(0, 3, n)
    assay[:15] = -1  # fitted for organ, not for assay: scored from the other sets' kernel
    organ[-5:] = assay[-5:] = -1  # labelled in no field: not fitted, not compared
    codes = {"organ": organ, "assay": assay}
    classifier, among = _classifier(tokens, codes, {"organ": 4, "assay": 3}, max_sets=80)
    compared = classifier.compared_rows
    assert compared.size == 80 and among.kernel.shape == (80, 80)
    annotator = _fit(tokens, codes, max_sets=80, calibrate=False)
    expected = annotator.annotate(tokens[compared], own=compared)
    np.testing.assert_allclose(among.best_log_odds, expected.best_log_odds)
    for name in codes:
        np.testing.assert_allclose(classifier.scores(name, among, compared), expected.scores[name])


def test_tokens_in_memory_memory_mapped_or_in_a_file_give_the_same_answers(tmp_path):
    tokens, codes = _random_sets()
    counts = tokens.copy()
    counts.data[::3] = 2  # counts, not 0/1: each region still counts once
    np.save(tmp_path / "indptr.npy", tokens.indptr.astype(np.int64))
    np.save(tmp_path / "indices.npy", tokens.indices.astype(np.int32))
    mapped = TokenMatrix.from_arrays(
        np.load(tmp_path / "indptr.npy"), np.load(tmp_path / "indices.npy", mmap_mode="r"), tokens.shape[1]
    )
    ad.AnnData(tokens, obs=pd.DataFrame(index=[f"s{i}" for i in range(codes.size)])).write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    queries = tokens[[1, 6, 9]]
    expected = _fit(tokens, {"group": codes}).annotate(queries, own=np.array([-1, 6, -1]))
    for source in (counts, mapped, backed.X):
        got = _fit(source, {"group": codes}).annotate(queries, own=np.array([-1, 6, -1]))
        np.testing.assert_array_equal(got.scores["group"], expected.scores["group"])
        np.testing.assert_array_equal(got.probabilities["group"], expected.probabilities["group"])
        np.testing.assert_array_equal(got.best_log_odds, expected.best_log_odds)
    assert TokenMatrix.of(tokens).read(np.array([2, 3])).indices is tokens.indices  # 0/1 rows are read in place
    assert TokenMatrix.of(counts).read(np.array([2, 3])).indices is not counts.indices  # counts: those rows copied


def test_the_saved_form_round_trips_and_refuses_other_tokens(tmp_path):
    tokens, codes = _random_sets()
    codes = codes.copy()
    codes[5] = -1
    fields = {"group": codes, "half": (np.arange(codes.size) < 15).astype(int)}
    fitted = _fit(tokens, fields, max_sets=20, random_state=4)
    record = fitted.to_record()
    # through an .h5ad (as bs.tl.train keeps it) and through flat arrays (a model folder's annotator.npz)
    adata = ad.AnnData(np.zeros((1, 1)))
    adata.uns["record"] = {"annotator": record}
    adata.write_h5ad(tmp_path / "a.h5ad")
    np.savez(tmp_path / "c.npz", **flatten(record))
    queries = tokens[[0, 3, 11]]
    for kept in (
        record,
        ad.read_h5ad(tmp_path / "a.h5ad").uns["record"]["annotator"],
        unflatten(dict(np.load(tmp_path / "c.npz", allow_pickle=False))),
    ):
        again = RegionAnnotator.from_record(kept, tokens)
        assert again.fields_ == ["group", "half"] and (again.max_sets, again.random_state) == (20, 4)
        for name, field in fitted.classifier_.fields.items():
            for attribute in FieldClassifier.__dataclass_fields__:
                np.testing.assert_array_equal(
                    getattr(again.classifier_.fields[name], attribute), getattr(field, attribute)
                )
        for name in fields:
            np.testing.assert_array_equal(again.predict_proba(queries)[name], fitted.predict_proba(queries)[name])
    # refused for other sets: a fitted set's regions changed, a set more; a record of another version
    changed = tokens.tolil()
    first = int(fitted.classifier_.compared_rows[0])
    changed[first, int(np.flatnonzero(changed[first].toarray()[0] == 0)[0])] = 1
    with pytest.raises(ValueError, match="regions changed"):
        RegionAnnotator.from_record(record, changed.tocsr())
    with pytest.raises(ValueError, match="not the sets it was fitted on"):
        RegionAnnotator.from_record(record, sp.vstack([tokens, tokens[:1]]).tocsr())
    with pytest.raises(ValueError, match="another bedspace version"):
        RegionAnnotator.from_record({**record, "format_version": 99}, tokens)
    with pytest.raises(ValueError, match="damaged"):
        RegionAnnotator.from_record({k: v for k, v in record.items() if k != "by_field"}, tokens)


def test_folds_are_stratified_and_cross_fitting_calibrates():
    codes = np.repeat([0, 1, 2], [6, 4, 1])
    folds = stratified_folds(codes, 2, random_state=0)
    for label in (0, 1):
        assert np.bincount(folds[codes == label], minlength=2).tolist() == [np.sum(codes == label) // 2] * 2
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1
    tokens, groups = _random_sets()
    cross_fitted = _fit(tokens, {"group": groups}, n_folds=3)
    assert cross_fitted.is_calibrated and cross_fitted.diagnostics_["group"]["n"] == groups.size


def test_the_domain_is_judged_on_log_odds_and_coverage():
    tokens, codes = _random_sets(n_regions=4000)
    annotator = _fit(tokens, {"group": codes})
    assert annotator.is_calibrated and annotator.min_log_odds_ > 0
    elsewhere = np.zeros((1, tokens.shape[1]), np.float32)
    elsewhere[0, 1000:1040] = 1  # regions where only the sets' scattered noise lies: no more shared than chance
    queries = sp.vstack([tokens[:3], sp.csr_matrix(elsewhere)]).tocsr()
    answer = annotator.annotate(queries, coverage=np.array([0.9, 0.01, np.nan, 0.9]))
    # unknown coverage does not count against a query; a random file shares no more than chance
    assert answer.in_domain.tolist() == [True, False, True, False]
    # out of the domain: no probability (the annotator abstains), labels ranked by enrichment
    assert np.isnan(answer.probabilities["group"][[1, 3]]).all()
    assert not np.isnan(answer.probabilities["group"][[0, 2]]).any()
    assert answer.probabilities["group"][0].max() > 0.5
    enrichment = label_enrichment(queries[[1]], tokens, codes, int(codes.max()) + 1).scores()[0]
    np.testing.assert_allclose(answer.scores["group"][1], enrichment)
    # ranked below every query it vouches for: an l2r of these four lists the two in the domain first
    for column in range(answer.scores["group"].shape[1]):
        order = np.argsort(-answer.ranking("group")[:, column])
        assert set(order[:2]) == {0, 2}
    # r2r's label agreement takes an abstaining query to carry labels drawn from the base rates: no set favoured
    shared = annotator.shared_labels(answer)
    assert np.isfinite(shared).all()
    np.testing.assert_allclose(shared[1], annotator.priors_["group"][codes])


# -- on the real collection -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(hg19_trained):
    train, test = hg19_trained
    return train, test


def test_training_calibrates_the_annotator(trained):
    train, _ = trained
    record = train.uns["bedspace"]["annotator"]
    assert list(record["fields"]) == FIELDS
    annotator = RegionAnnotator.from_record(record, train.X)
    for field in FIELDS:
        diagnostics = annotator.diagnostics_[field]
        assert 0 < diagnostics["n"] <= train.obs["bedspace_in_training"].sum()  # sets whose label another has
        assert 0 <= diagnostics["ece"] <= 1 and diagnostics["hit@1"] > 0.3
        assert np.isclose(annotator.priors_[field].sum(), 1.0)
        # the support step knows how many fitted sets each label rests on
        calibrator, fitted = annotator.calibrators_[field], annotator.classifier_.fields[field]
        n_labels = len(annotator.label_names_[field])
        assert calibrator.support == tuple(np.bincount(fitted.codes, minlength=n_labels).tolist())
        assert len(calibrator.support_shifts) == 4 and np.isfinite(calibrator.support_shifts).all()
    assert annotator.min_log_odds_ > 0


def test_r2l_gives_calibrated_probabilities_per_field(trained, hg19):
    train, test = trained
    query = hg19.beds / test.obs_names[0]
    table = bs.tl.search(train, query, search_type="r2l", top_k=100)
    assert list(table.columns) == ["field", "rank", "name", "value", "probability", "score", "in_domain", "evidence"]
    assert table["field"].drop_duplicates().tolist() == FIELDS and table["in_domain"].all()
    for field, part in table.groupby("field"):
        assert part["probability"].sum() == pytest.approx(1.0)  # every label of the field: a distribution
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["probability"].is_monotonic_decreasing
        assert len(part) == (train.uns["bedspace"]["labels"]["field"] == field).sum()
    # the held-out sets' true labels get more probability than the base rates would give them
    answers = bs.tl.search(train, test, search_type="r2l", top_k=100)
    annotator = RegionAnnotator.from_record(train.uns["bedspace"]["annotator"], train.X)
    for field in FIELDS:
        part = answers[answers["field"] == field]
        truth = test.obs[field].astype(str)
        on_truth = part[part["value"] == truth.loc[part["query"]].to_numpy()]
        labels = train.uns["bedspace"]["labels"]
        prior = pd.Series(annotator.priors_[field], index=labels.loc[labels["field"] == field, "value"])
        assert on_truth["probability"].mean() > prior.reindex(on_truth["value"]).fillna(0).mean()


def test_abstaining_below_a_probability(trained):
    train, test = trained
    # sets of full evidence: smaller ones are flagged (tests/reliability/test_evidence_and_l2r.py)
    test = test[test.obs["n_tokens"] >= bs.BEDSpaceModel.from_anndata(train).need_annotator().evidence_.min_regions]
    everything = bs.tl.search(train, test, search_type="r2l", top_k=3)
    confident = bs.tl.search(train, test, search_type="r2l", top_k=3, min_probability=0.9)
    assert (confident["probability"] >= 0.9).all() and len(confident) < len(everything)
    with pytest.raises(ValueError, match=r"min_probability must be a number in \[0, 1\]"):
        bs.tl.search(train, test, search_type="r2l", min_probability=2)
    with pytest.raises(ValueError, match="r2l"):
        bs.tl.search(train, "organ=blood", search_type="l2r", min_probability=0.5)


def _shuffled_copy(source, destination, seed=0):
    """The same intervals, moved to uniform random places on their chromosomes (as bedtools shuffle does)."""
    bed = pd.read_csv(source, sep="\t", header=None, usecols=[0, 1, 2], comment="#")
    width = (bed[2] - bed[1]).to_numpy()
    span = bed.groupby(0)[2].transform("max").to_numpy()
    start = np.random.default_rng(seed).integers(0, np.maximum(span - width, 1))
    moved = pd.DataFrame({0: bed[0], 1: start, 2: start + width})
    with gzip.open(destination, "wt") as handle:
        moved.to_csv(handle, sep="\t", header=False, index=False)
    return destination


def test_queries_unlike_the_collection_are_flagged(trained, hg19, tmp_path):
    train, test = trained
    annotator = RegionAnnotator.from_record(train.uns["bedspace"]["annotator"], train.X)
    fly = bs.datasets.insulators().beds / "CTCF_Kc_Bushey_2009.bed.gz"
    shuffled = _shuffled_copy(hg19.beds / test.obs_names[0], tmp_path / "shuffled.bed.gz")
    for query in (fly, shuffled):
        with pytest.warns(bs.BEDSpaceWarning, match="unlike every reference set"):
            table = bs.tl.search(train, query, search_type="r2l", top_k=100, field="organ")
        assert not table["in_domain"].any()
        # no number that reads as confidence: the annotator abstains, and no label passes a threshold
        assert table["probability"].isna().all() and len(table) == annotator.priors_["organ"].size
        with pytest.warns(bs.BEDSpaceWarning, match="unlike every reference set"):
            called = bs.tl.search(train, query, search_type="r2l", field="organ", min_probability=0.01)
        assert called.empty
    (tmp_path / "empty.bed").write_text("")
    with pytest.raises(ValueError, match="nothing to rank"), pytest.warns(bs.BEDSpaceWarning, match="no intervals"):
        bs.tl.search(train, tmp_path / "empty.bed", search_type="r2l")
    # the real file it was shuffled from is in the domain, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        table = bs.tl.search(train, hg19.beds / test.obs_names[0], search_type="r2l", field="organ")
    assert table["in_domain"].all()


def test_label_vectors_on_request_and_stored_sets_are_left_out(trained):
    train, _ = trained
    by_vectors = bs.tl.search(train, train.obs_names[0], search_type="r2l", method="embedding", top_k=3)
    assert list(by_vectors.columns[:3]) == ["rank", "name", "score"]
    # a stored set asked for by name is annotated from the other sets (leave-one-out), like a new query
    own = bs.tl.search(train, train.obs_names[0], search_type="r2l", field="assay", top_k=1)
    assert own["in_domain"].all() and own["probability"].iloc[0] < 1.0
    with pytest.raises(ValueError, match="method must be"):
        bs.tl.search(train, train.obs_names[0], search_type="r2l", method="jaccard")


def test_annotator_survives_h5ad_and_model_folders(slice_trained, tmp_path):
    train, test = slice_trained  # a round trip: the chr21–22 slice serves as the whole genome would
    queries = test[:4].copy()
    expected = bs.tl.search(train, queries, search_type="r2l", top_k=3)
    train.write_h5ad(tmp_path / "trained.h5ad")
    read = ad.read_h5ad(tmp_path / "trained.h5ad")
    pd.testing.assert_frame_equal(bs.tl.search(read, queries, search_type="r2l", top_k=3), expected)
    model = bs.BEDSpaceModel.from_anndata(train)
    assert model.can_annotate and model.annotator is not None
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "annotator.npz").is_file()
    loaded = bs.BEDSpaceModel.load(tmp_path / "model")
    assert isinstance(loaded.reference.tokens._coded.gaps, np.memmap)  # the tokens stay on disk, read as needed
    assert (loaded.reference.tokens.read().to_csr() != model.reference.tokens.read().to_csr()).nnz == 0
    pd.testing.assert_frame_equal(loaded.search(queries, search_type="r2l", top_k=3), expected)


def test_the_annotator_training_fitted_is_kept_not_refitted(slice_trained, tmp_path, monkeypatch):
    train, test = slice_trained
    queries = test[:4].copy()
    expected = bs.tl.search(train, queries, search_type="r2l", top_k=3)

    def no_fitting(*args, **kwargs):
        raise AssertionError("the kept annotator was refitted")

    train.write_h5ad(tmp_path / "trained.h5ad")
    read = ad.read_h5ad(tmp_path / "trained.h5ad")
    bs.BEDSpaceModel.from_anndata(read).save(tmp_path / "model")
    with monkeypatch.context() as patched:
        patched.setattr(RegionAnnotator, "fit", no_fitting)
        pd.testing.assert_frame_equal(bs.tl.search(read, queries, search_type="r2l", top_k=3), expected)
        loaded = bs.BEDSpaceModel.load(tmp_path / "model")
        pd.testing.assert_frame_equal(loaded.search(queries, search_type="r2l", top_k=3), expected)
        # the sets changed since: a set relabelled is fitted again, not answered by an annotator of other labels
        relabelled = read.copy()
        other = next(v for v in relabelled.obs["organ"].cat.categories if v != relabelled.obs["organ"].iloc[0])
        relabelled.obs.iloc[0, relabelled.obs.columns.get_loc("organ")] = other
        with pytest.raises(AssertionError, match="refitted"), warnings.catch_warnings(record=True) as told:
            warnings.simplefilter("always")
            bs.tl.search(relabelled, queries, search_type="r2l", top_k=3)
        assert ["'organ' of 1 set(s)" in str(w.message) for w in told] == [True]  # and the user is told
    # a damaged annotator file is refused by name, like every file of the folder
    (tmp_path / "model" / "annotator.npz").write_bytes(b"not an annotator")
    with pytest.raises(ValueError, match="annotator.npz does not match the checksum"):
        bs.BEDSpaceModel.load(tmp_path / "model")


def test_calibrate_on_its_own(slice_trained):
    train, _ = slice_trained
    small = train[:24].copy()
    # cross-fitting: each fold annotated by a classifier fitted on the other (no training)
    folds = bs.tl.calibrate(small, n_folds=2, random_state=3, copy=True)
    assert "annotator" in folds.uns["bedspace"]
    assert folds.uns["bedspace"]["annotator"] is not small.uns["bedspace"].get("annotator")
    assert "bedspace_in_training" in folds.obs and (folds.obsm["X_bedspace"] == small.obsm["X_bedspace"]).all()
    # leave-one-out (the default) is deterministic
    once = bs.tl.calibrate(small, copy=True).uns["bedspace"]["annotator"]
    twice = bs.tl.calibrate(small, copy=True).uns["bedspace"]["annotator"]
    for name, value in flatten(once).items():
        np.testing.assert_array_equal(value, flatten(twice)[name])
    with pytest.raises(ValueError, match="n_folds must be None"):
        bs.tl.calibrate(small, n_folds=1)
    with pytest.raises(KeyError):
        bs.tl.calibrate(small, key="never_trained")


def test_uncalibrated_training_still_annotates_by_scores(slice_adata):
    part = slice_adata[:30].copy()
    bs.tl.train(part, labels="assay", epochs=3, dim=16, n_threads=1, calibrate=False)
    assert not part.uns["bedspace"]["annotator"]["calibrators"]  # the classifier alone
    table = bs.tl.search(part, part.obs_names[0], search_type="r2l")
    assert "probability" not in table.columns and table["score"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="calibrate=True"):
        bs.tl.search(part, part.obs_names[0], search_type="r2l", min_probability=0.5)
    # without probabilities there is no shared-label term: r2r ranks by the embedding alone (and says so on request)
    by_default = bs.tl.search(part, part.obs_names[0], search_type="r2r", top_k=5)
    by_vectors = bs.tl.search(part, part.obs_names[0], search_type="r2r", top_k=5, method="embedding")
    pd.testing.assert_frame_equal(by_default, by_vectors)
    with pytest.raises(ValueError, match="no calibrated annotator"):
        bs.tl.search(part, part.obs_names[0], search_type="r2r", method="regions")
