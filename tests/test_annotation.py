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
from bedspace._annotation import (
    BALANCE_POWERS,
    MAX_LIFT,
    Annotator,
    FieldClassifier,
    KernelClassifier,
    _balanced_label_weights,
    _fitted_rows,
    annotate,
    arrays_record,
    compare,
    record_arrays,
    stratified_folds,
    token_cosine,
)
from bedspace._calibration import Calibrator

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


def test_a_stored_set_is_annotated_from_the_others():
    tokens, codes = _random_sets()
    classifier = KernelClassifier.fit(tokens, {"group": (codes, 3)})
    own = np.arange(codes.size)
    left_out = annotate(tokens, tokens, classifier, None, own=own)
    np.testing.assert_allclose(left_out.scores["group"], classifier.fields["group"].leave_one_out)
    as_new = annotate(tokens, tokens, classifier, None)  # each set among the reference: it fits itself
    assert (as_new.scores["group"].argmax(axis=1) == codes).all()
    comparison = compare(tokens[:2], tokens, own=np.array([0, -1]))
    assert np.isfinite(comparison.best_log_odds).all()
    assert comparison.best_log_odds[1] > comparison.best_log_odds[0]  # set 1 may match itself, set 0 may not


def test_unlabelled_sets_are_not_fitted_and_a_sample_keeps_every_label():
    tokens, codes = _random_sets()
    codes = codes.copy()
    codes[:4] = -1
    classifier = KernelClassifier.fit(tokens, {"group": (codes, 3)})
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
    classifier = KernelClassifier.fit(tokens, {"organ": (organ, 5), "assay": (assay, 3)}, max_sets=40)
    organ_rows, assay_rows = classifier.fields["organ"].rows, classifier.fields["assay"].rows
    fitted = np.union1d(organ_rows, assay_rows)
    assert fitted.size <= 40  # one kernel of at most max_sets sets, not one sample per field
    assert set(organ[organ_rows]) == {0, 1, 2, 3, 4} and set(assay[assay_rows]) == {0, 1, 2}
    assert (assay[assay_rows] >= 0).all() and np.isin(assay_rows, organ_rows).all()
    # the fitted sets' kernel is the one of the sample alone
    alone = KernelClassifier.fit(tokens[organ_rows], {"organ": (organ[organ_rows], 5)})
    np.testing.assert_allclose(classifier.fields["organ"].coefficients, alone.fields["organ"].coefficients)


def test_a_query_is_compared_with_the_fitted_sets_only(monkeypatch):
    rng = np.random.default_rng(1)
    n = 300
    tokens = sp.csr_matrix((rng.random((n, 400)) < 0.05).astype(np.float32))
    organ = np.r_[np.zeros(280, int), np.repeat([1, 2, 3, 4], 5)]
    classifier = KernelClassifier.fit(tokens, {"organ": (organ, 5)}, max_sets=40)
    fitted = classifier.fields["organ"].rows
    np.testing.assert_array_equal(classifier.compared_rows, fitted)
    not_fitted = np.setdiff1d(np.arange(n), fitted)
    queries = np.r_[fitted[:3], not_fitted[:3]]  # three fitted sets (left out) and three other sets of it
    seen = []
    original = bs._annotation.overlap_counts
    monkeypatch.setattr(
        bs._annotation,
        "overlap_counts",
        lambda q, r, **kw: seen.append(kw.get("reference_rows")) or original(q, r, **kw),
    )
    got = annotate(tokens, tokens, classifier, None, query_rows=queries, own=queries)
    assert all(np.array_equal(rows, fitted) for rows in seen)  # never the 300 sets, only the 40 fitted
    monkeypatch.undo()
    # the same as comparing with every set and keeping the fitted sets' columns
    everything = compare(tokens[queries], tokens)
    expected = classifier.fields["organ"].predict(everything.kernel[:, fitted])
    expected[:3] = classifier.fields["organ"].leave_one_out[:3]
    np.testing.assert_allclose(got.scores["organ"], expected)
    log_odds = np.array(
        [compare(tokens[[q]], tokens, reference_rows=np.setdiff1d(fitted, [q])).best_log_odds[0] for q in queries]
    )
    np.testing.assert_allclose(got.best_log_odds, log_odds)


def test_the_fit_compares_the_fitted_sets_as_annotate_would():
    rng = np.random.default_rng(2)
    n = 120
    tokens = sp.csr_matrix((rng.random((n, 300)) < 0.08).astype(np.float32))
    organ, assay = rng.integers(0, 4, n), rng.integers(0, 3, n)
    assay[:15] = -1  # fitted for organ, not for assay: scored from the other sets' kernel
    organ[-5:] = assay[-5:] = -1  # labelled in no field: not fitted, not compared
    reference = np.arange(3, n)  # read in place
    codes = {"organ": (organ[reference], 4), "assay": (assay[reference], 3)}
    classifier, among = KernelClassifier.fit_compared(tokens, codes, reference_rows=reference, max_sets=80)
    compared = classifier.compared_rows
    assert compared.size == 80 and among.kernel.shape == (80, 80)
    expected = annotate(
        tokens, tokens, classifier, None, query_rows=reference[compared], reference_rows=reference, own=compared
    )
    np.testing.assert_allclose(among.best_log_odds, expected.best_log_odds)
    for name in codes:
        np.testing.assert_allclose(classifier.scores(name, among, compared), expected.scores[name])


def test_sets_are_read_in_place_as_from_a_copy():
    tokens, codes = _random_sets()
    reference = np.arange(0, codes.size, 2)[3:]  # some of the sets, not in order of the matrix's rows alone
    queries = np.array([1, 6, 9, 8])
    own = np.array([-1, 0, -1, 1])  # sets 6 and 8 are reference sets 0 and 1: annotated from the others
    copied = KernelClassifier.fit(tokens[reference], {"group": (codes[reference], 3)})
    in_place = KernelClassifier.fit(tokens, {"group": (codes[reference], 3)}, reference_rows=reference)
    np.testing.assert_array_equal(in_place.fields["group"].rows, copied.fields["group"].rows)
    np.testing.assert_allclose(in_place.fields["group"].coefficients, copied.fields["group"].coefficients)
    expected = annotate(tokens[queries], tokens[reference], copied, None, own=own)
    got = annotate(tokens, tokens, in_place, None, query_rows=queries, reference_rows=reference, own=own)
    np.testing.assert_allclose(got.scores["group"], expected.scores["group"])
    np.testing.assert_allclose(got.best_log_odds, expected.best_log_odds)


def test_a_kept_classifier_is_used_only_for_the_sets_it_was_fitted_on(tmp_path):
    tokens, codes = _random_sets()
    codes = codes.copy()
    codes[5] = -1
    fields = {"group": (codes, 3), "half": ((np.arange(codes.size) < 15).astype(int), 2)}
    fitted = KernelClassifier.fit(tokens, fields, max_sets=20, random_state=4)
    record = fitted.to_record(tokens)
    # through an .h5ad (as bs.tl.calibrate keeps it) and through flat arrays (a model folder's classifier.npz)
    adata = ad.AnnData(np.zeros((1, 1)))
    adata.uns["record"] = {"classifier": record}
    adata.write_h5ad(tmp_path / "a.h5ad")
    np.savez(tmp_path / "c.npz", **record_arrays(record))
    for kept in (
        record,
        ad.read_h5ad(tmp_path / "a.h5ad").uns["record"]["classifier"],
        arrays_record(dict(np.load(tmp_path / "c.npz", allow_pickle=False))),
    ):
        again = KernelClassifier.from_record(kept, tokens, fields)
        assert again is not None and list(again.fields) == ["group", "half"]
        assert (again.n_sets, again.max_sets, again.random_state) == (30, 20, 4)
        for name, field in fitted.fields.items():
            for attribute in FieldClassifier.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(again.fields[name], attribute), getattr(field, attribute))
    # refused for other sets: a fitted set's regions changed, a label changed, a set more, a field less
    changed = tokens.tolil()
    first = int(fitted.fields["group"].rows[0])
    changed[first, int(np.flatnonzero(changed[first].toarray()[0] == 0)[0])] = 1
    relabelled = {**fields, "group": (np.where(np.arange(codes.size) == first, (codes + 1) % 3, codes), 3)}
    more = sp.vstack([tokens, tokens[:1]]).tocsr()
    longer = {name: (np.r_[c, 0], n) for name, (c, n) in fields.items()}
    assert KernelClassifier.from_record(record, changed.tocsr(), fields) is None
    assert KernelClassifier.from_record(record, tokens, relabelled) is None
    assert KernelClassifier.from_record(record, more, longer) is None
    assert KernelClassifier.from_record(record, tokens, {"group": fields["group"]}) is None
    assert KernelClassifier.from_record({**record, "format_version": 99}, tokens, fields) is None


def test_folds_are_stratified():
    codes = np.repeat([0, 1, 2], [6, 4, 1])
    folds = stratified_folds(codes, 2, random_state=0)
    for label in (0, 1):
        assert np.bincount(folds[codes == label], minlength=2).tolist() == [np.sum(codes == label) // 2] * 2
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1


def test_annotator_round_trips_and_judges_the_domain(tmp_path):
    annotator = Annotator(
        calibrators={"organ": Calibrator(temperature=0.01, labels=("a", "b"), field="organ")},
        priors={"organ": np.array([0.75, 0.25])},
        min_log_odds=1.5,
        diagnostics={"organ": {"n": 10.0, "hit@1": 0.8, "ece": 0.04}},
    )
    again = Annotator.from_dict(annotator.to_dict())
    assert again.to_dict() == annotator.to_dict()
    # through an .h5ad, as train writes it
    adata = ad.AnnData(np.zeros((1, 1)))
    adata.uns["record"] = {"annotator": annotator.to_dict()}
    adata.write_h5ad(tmp_path / "a.h5ad")
    read = Annotator.from_dict(ad.read_h5ad(tmp_path / "a.h5ad").uns["record"]["annotator"])
    assert read.to_dict() == annotator.to_dict()
    inside = annotator.in_domain(np.array([2.0, 1.0, 2.0, 2.0]), np.array([0.9, 0.9, 0.05, np.nan]))
    assert inside.tolist() == [True, False, False, True]  # unknown coverage does not count against a query
    probabilities = annotator.probabilities("organ", np.array([[0.05, 0.04], [0.05, 0.04]]), np.array([True, False]))
    assert probabilities[0, 0] > 0.5 and probabilities[1].tolist() == [0.75, 0.25]
    with pytest.raises(ValueError, match="annotator"):
        Annotator.from_dict({**annotator.to_dict(), "format_version": 99})


# -- on the real collection -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(hg19_trained):
    train, test = hg19_trained
    return train, test


def test_training_calibrates_the_annotator(trained):
    train, _ = trained
    record = train.uns["bedspace"]["annotator"]
    assert record["fields"] == FIELDS
    annotator = Annotator.from_dict(record)
    for field in FIELDS:
        diagnostics = annotator.diagnostics[field]
        assert 0 < diagnostics["n"] <= train.obs["bedspace_in_training"].sum()  # sets whose label another has
        assert 0 <= diagnostics["ece"] <= 1 and diagnostics["hit@1"] > 0.3
        assert np.isclose(annotator.priors[field].sum(), 1.0)
    assert annotator.min_log_odds > 0


def test_r2l_gives_calibrated_probabilities_per_field(trained, hg19):
    train, test = trained
    query = hg19.beds / test.obs_names[0]
    table = bs.tl.search(train, query, search_type="r2l", top_k=100)
    assert list(table.columns) == ["field", "rank", "name", "value", "probability", "score", "in_domain"]
    assert table["field"].drop_duplicates().tolist() == FIELDS and table["in_domain"].all()
    for field, part in table.groupby("field"):
        assert part["probability"].sum() == pytest.approx(1.0)  # every label of the field: a distribution
        assert part["rank"].tolist() == list(range(1, len(part) + 1))
        assert part["probability"].is_monotonic_decreasing
        assert len(part) == (train.uns["bedspace"]["labels"]["field"] == field).sum()
    # the held-out sets' true labels get more probability than the base rates would give them
    answers = bs.tl.search(train, test, search_type="r2l", top_k=100)
    annotator = Annotator.from_dict(train.uns["bedspace"]["annotator"])
    for field in FIELDS:
        part = answers[answers["field"] == field]
        truth = test.obs[field].astype(str)
        on_truth = part[part["value"] == truth.loc[part["query"]].to_numpy()]
        labels = train.uns["bedspace"]["labels"]
        prior = pd.Series(annotator.priors[field], index=labels.loc[labels["field"] == field, "value"])
        assert on_truth["probability"].mean() > prior.reindex(on_truth["value"]).fillna(0).mean()


def test_abstaining_below_a_probability(trained):
    train, test = trained
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
    annotator = Annotator.from_dict(train.uns["bedspace"]["annotator"])
    fly = bs.datasets.insulators().beds / "CTCF_Kc_Bushey_2009.bed.gz"
    shuffled = _shuffled_copy(hg19.beds / test.obs_names[0], tmp_path / "shuffled.bed.gz")
    for query in (fly, shuffled):
        with pytest.warns(bs.BEDSpaceWarning, match="unlike every reference set"):
            table = bs.tl.search(train, query, search_type="r2l", top_k=100, field="organ")
        assert not table["in_domain"].any()
        # base rates, not a confident label
        assert table["probability"].max() == pytest.approx(annotator.priors["organ"].max())
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


def test_annotator_survives_h5ad_and_model_folders(trained, tmp_path):
    train, test = trained
    queries = test[:4].copy()
    expected = bs.tl.search(train, queries, search_type="r2l", top_k=3)
    train.write_h5ad(tmp_path / "trained.h5ad")
    read = ad.read_h5ad(tmp_path / "trained.h5ad")
    pd.testing.assert_frame_equal(bs.tl.search(read, queries, search_type="r2l", top_k=3), expected)
    model = bs.BEDSpaceModel.from_anndata(train)
    assert model.can_annotate and model.annotator is not None
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "classifier.npz").is_file()
    loaded = bs.BEDSpaceModel.load(tmp_path / "model")
    assert loaded.annotator.to_dict() == model.annotator.to_dict()
    assert (loaded.reference.tokens != model.reference.tokens).nnz == 0
    pd.testing.assert_frame_equal(loaded.search(queries, search_type="r2l", top_k=3), expected)


def test_the_classifier_calibration_fitted_is_kept_not_refitted(trained, tmp_path, monkeypatch):
    train, test = trained
    assert train.obs["bedspace_in_training"].all()
    kept = train.uns["bedspace"]["classifier"]
    queries = test[:4].copy()
    refitted = bs.BEDSpaceModel.from_anndata(train)
    refitted._classifier_record = None  # what a query did before: fit the classifier on the sets
    expected = refitted.search(queries, search_type="r2l", top_k=3)

    def no_fitting(*args, **kwargs):
        raise AssertionError("the kept classifier was refitted")

    train.write_h5ad(tmp_path / "trained.h5ad")
    read = ad.read_h5ad(tmp_path / "trained.h5ad")
    bs.BEDSpaceModel.from_anndata(read).save(tmp_path / "model")
    with monkeypatch.context() as patched:
        patched.setattr(KernelClassifier, "fit", no_fitting)
        pd.testing.assert_frame_equal(bs.tl.search(read, queries, search_type="r2l", top_k=3), expected)
        loaded = bs.BEDSpaceModel.load(tmp_path / "model")
        pd.testing.assert_frame_equal(loaded.search(queries, search_type="r2l", top_k=3), expected)
        # the sets changed since: a set relabelled is fitted again, not answered by a classifier of other labels
        relabelled = read.copy()
        fitted_set = int(kept["by_field"]["organ"]["rows"][0])
        other = next(v for v in relabelled.obs["organ"].cat.categories if v != relabelled.obs["organ"].iloc[fitted_set])
        relabelled.obs.iloc[fitted_set, relabelled.obs.columns.get_loc("organ")] = other
        with pytest.raises(AssertionError, match="refitted"):
            bs.tl.search(relabelled, queries, search_type="r2l", top_k=3)
    # a damaged classifier file is refused by name, like every file of the folder
    (tmp_path / "model" / "classifier.npz").write_bytes(b"not a classifier")
    with pytest.raises(ValueError, match="classifier.npz does not match the checksum"):
        bs.BEDSpaceModel.load(tmp_path / "model")
    # cross-fitted calibration fits no classifier on every set: it keeps none
    held = bs.tl.calibrate(read, n_folds=2, copy=True)
    assert "classifier" not in held.uns["bedspace"]


def test_calibrate_on_its_own(trained):
    train, _ = trained
    small = train[:24].copy()
    # cross-fitting: each fold annotated by a classifier fitted on the other (no training)
    folds = bs.tl.calibrate(small, n_folds=2, random_state=3, copy=True)
    assert "annotator" in folds.uns["bedspace"]
    assert folds.uns["bedspace"]["annotator"] is not small.uns["bedspace"].get("annotator")
    assert "bedspace_in_training" in folds.obs and (folds.obsm["X_bedspace"] == small.obsm["X_bedspace"]).all()
    # leave-one-out (the default) is deterministic
    once = bs.tl.calibrate(small, copy=True).uns["bedspace"]["annotator"]
    twice = bs.tl.calibrate(small, copy=True).uns["bedspace"]["annotator"]
    assert Annotator.from_dict(once).to_dict() == Annotator.from_dict(twice).to_dict()
    with pytest.raises(ValueError, match="n_folds must be None"):
        bs.tl.calibrate(small, n_folds=1)
    with pytest.raises(KeyError):
        bs.tl.calibrate(small, key="never_trained")


def test_uncalibrated_training_still_annotates_by_scores(hg19_adata):
    part = hg19_adata[:30].copy()
    bs.tl.train(part, labels="assay", epochs=3, dim=16, n_threads=1, calibrate=False)
    assert "annotator" not in part.uns["bedspace"]
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
