from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bedspace.annotate._calibration import (
    Calibrator,
    _isotonic_knots,
    expected_calibration_error,
    fit_calibrator,
    fit_temperature,
    log_loss,
    reliability_bins,
    softmax,
)


def _draw(rng, n, k, temperature, scale=1.0):
    """Scores, and labels drawn from softmax(scores / temperature): a model whose calibration is known."""
    scores = scale * rng.normal(size=(n, k))
    p = softmax(scores, temperature)
    truth = (p.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    return scores, truth


def test_reliability_bins_and_ece_by_hand():
    # top confidences .9, .8, .6, .55 (right, wrong, right, right), and 1.0 (right)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55], [1.0, 0.0]])
    truth = np.array([0, 0, 0, 1, 0])
    bins = reliability_bins(probabilities, truth, n_bins=4)
    assert bins["lower"].tolist() == [0, 0.25, 0.5, 0.75] and bins["upper"].tolist() == [0.25, 0.5, 0.75, 1]
    assert bins["count"].tolist() == [0, 0, 2, 3]  # confidence 1.0 belongs to the last bin
    assert bins["accuracy"].iloc[:2].isna().all() and bins["confidence"].iloc[:2].isna().all()
    assert bins["confidence"].iloc[2] == pytest.approx((0.6 + 0.55) / 2)
    assert bins["accuracy"].iloc[2] == 1.0
    assert bins["confidence"].iloc[3] == pytest.approx((0.9 + 0.8 + 1.0) / 3)
    assert bins["accuracy"].iloc[3] == pytest.approx(2 / 3)
    expected = 2 / 5 * abs(1 - 0.575) + 3 / 5 * abs(2 / 3 - 0.9)
    assert expected_calibration_error(probabilities, truth, n_bins=4) == pytest.approx(expected)
    assert log_loss(probabilities, truth) == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.6, 0.55, 1.0])), rel=1e-12)


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    scores, truth = _draw(rng, 20_000, 5, temperature=0.5)
    calibrated = expected_calibration_error(softmax(scores, 0.5), truth)
    overconfident = expected_calibration_error(softmax(scores, 0.1), truth)
    underconfident = expected_calibration_error(softmax(scores, 3.0), truth)
    assert calibrated < 0.02
    assert overconfident > 0.2 and underconfident > 0.2
    # overconfidence: stated confidence above accuracy in every filled bin of the top half
    bins = reliability_bins(softmax(scores, 0.1), truth, n_bins=10)
    top = bins[(bins["lower"] >= 0.5) & (bins["count"] > 0)]
    assert (top["confidence"] > top["accuracy"]).all()


@pytest.mark.parametrize("temperature", [0.02, 0.3, 2.0])
def test_fitted_temperature_recovers_the_true_one(temperature):
    rng = np.random.default_rng(1)
    # cosine-like scores for small temperatures, wider ones for large
    scores, truth = _draw(rng, 5_000, 6, temperature, scale=0.1 if temperature < 0.1 else 1.0)
    fitted = fit_temperature(scores, truth)
    assert fitted == pytest.approx(temperature, rel=0.1)
    # and the fit beats its neighbours on log loss: it is the minimum
    assert log_loss(softmax(scores, fitted), truth) <= log_loss(softmax(scores, fitted * 1.5), truth)
    assert log_loss(softmax(scores, fitted), truth) <= log_loss(softmax(scores, fitted / 1.5), truth)


def test_calibrator_fixes_cosine_scores_out_of_sample():
    # Cosine similarities (range ~0.1) under a raw softmax are nearly uniform: badly underconfident.
    rng = np.random.default_rng(2)
    scores, truth = _draw(rng, 4_000, 8, temperature=0.03, scale=0.1)
    fit, held = slice(0, 2_000), slice(2_000, None)
    calibrator = fit_calibrator(scores[fit], truth[fit], isotonic=False)
    raw = softmax(scores[held])
    calibrated = calibrator.predict_proba(scores[held])
    assert np.allclose(calibrated.sum(axis=1), 1)
    assert expected_calibration_error(calibrated, truth[held]) < 0.03
    assert expected_calibration_error(raw, truth[held]) > 0.3
    assert log_loss(calibrated, truth[held]) < log_loss(raw, truth[held])
    np.testing.assert_array_equal(calibrated.argmax(axis=1), scores[held].argmax(axis=1))
    assert calibrator.diagnostics["ece"] < calibrator.diagnostics["ece_raw"]
    assert not calibrator.isotonic


def test_isotonic_step_only_when_a_temperature_is_not_enough():
    rng = np.random.default_rng(3)
    scores, truth = _draw(rng, 4_000, 6, temperature=0.5)
    # a temperature family fits these draws exactly: the isotonic step must not be taken
    assert not fit_calibrator(scores, truth, isotonic="auto").isotonic
    # squashed scores (sign · |s|²) distort confidence in a way no single temperature undoes
    distorted = np.sign(scores) * scores**2
    chosen = fit_calibrator(distorted, truth, isotonic="auto")
    assert chosen.isotonic
    assert chosen.diagnostics["ece_cv_isotonic"] < chosen.diagnostics["ece_cv_temperature"]
    assert chosen.diagnostics["log_loss_cv_isotonic"] <= chosen.diagnostics["log_loss_cv_temperature"]
    probabilities = chosen.predict_proba(distorted)
    assert np.allclose(probabilities.sum(axis=1), 1) and np.all(probabilities >= 0)
    # the isotonic step changes confidences, never the predicted label; confidence is monotone in the raw one
    np.testing.assert_array_equal(probabilities.argmax(axis=1), distorted.argmax(axis=1))
    raw_top = softmax(distorted, chosen.temperature).max(axis=1)
    order = np.argsort(raw_top)
    top = probabilities.max(axis=1)[order]
    unchanged_floor = top == np.maximum.accumulate(top)  # may only dip where the argmax floor lifts a value
    assert unchanged_floor.mean() > 0.95
    assert 0 < min(chosen.isotonic_y) and max(chosen.isotonic_y) < 1  # never certain from finite data


def test_calibrator_round_trips_through_json_and_h5ad(tmp_path):
    rng = np.random.default_rng(4)
    scores, truth = _draw(rng, 600, 3, temperature=0.05, scale=0.1)
    labels = ["blood", "liver", "CD4+ T cell (activated)"]
    for isotonic in (False, True):
        calibrator = fit_calibrator(scores, truth, isotonic=isotonic, labels=labels, field="organ")
        record = calibrator.to_dict()
        assert json.loads(json.dumps(record)) == record  # plain JSON types only
        again = Calibrator.from_dict(json.loads(json.dumps(record)))
        assert again == calibrator
        adata = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]))
        adata.uns["calibration"] = {"organ": record}
        adata.write_h5ad(tmp_path / f"c{isotonic}.h5ad")
        back = Calibrator.from_dict(ad.read_h5ad(tmp_path / f"c{isotonic}.h5ad").uns["calibration"]["organ"])
        assert back.labels == tuple(labels) and back.field == "organ" and back.isotonic == isotonic
        np.testing.assert_allclose(back.predict_proba(scores), calibrator.predict_proba(scores))


def test_calibration_errors_name_the_problem():
    rng = np.random.default_rng(5)
    scores, truth = _draw(rng, 50, 3, temperature=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        softmax(scores, 0)
    with pytest.raises(ValueError, match="isotonic must be True, False or 'auto'"):
        fit_calibrator(scores, truth, isotonic="maybe")
    with pytest.raises(ValueError, match="2 labels for 3 score columns"):
        fit_calibrator(scores, truth, labels=["a", "b"])
    with pytest.raises(ValueError, match="outside 0 … 2"):
        fit_temperature(scores, truth + 1)
    with pytest.raises(TypeError, match="integer label columns"):
        log_loss(softmax(scores), truth.astype(float))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(softmax(scores), truth, n_bins=0)
    calibrator = fit_calibrator(scores, truth, labels=["a", "b", "c"], field="kind")
    with pytest.raises(ValueError, match="fitted for 3 labels of field 'kind'"):
        calibrator.predict_proba(scores[:, :2])
    with pytest.raises(ValueError, match="not a bedspace calibrator"):
        Calibrator.from_dict({"format": "something else", "temperature": 1.0})
    with pytest.raises(ValueError, match="upgrade bedspace"):
        Calibrator.from_dict(calibrator.to_dict() | {"format_version": 99})
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        Calibrator(temperature=-1.0)


def test_calibrating_real_held_out_annotations(hg19_trained):
    """The embedding's cosine scores for a field, calibrated on half of the held-out sets, tested on the other."""
    import bedspace as bs

    train, test = hg19_trained
    model = bs.BEDSpaceModel.from_anndata(train)
    in_field = (model.labels["field"] == "cell_class").to_numpy()
    values = model.labels["value"].to_numpy()[in_field].tolist()
    known = test.obs["cell_class"].astype(str).isin(values).to_numpy()
    vectors = model.embed(test[known])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = vectors @ model.unit_label_vectors[in_field].T
    truth = np.array([values.index(v) for v in test.obs["cell_class"].astype(str)[known]])
    fit, held = np.arange(truth.size) % 2 == 0, np.arange(truth.size) % 2 == 1
    calibrator = fit_calibrator(scores[fit], truth[fit], labels=values, field="cell_class", isotonic=False)
    raw, calibrated = softmax(scores[held]), calibrator.predict_proba(scores[held])
    accuracy = np.mean(scores[held].argmax(axis=1) == truth[held])
    # raw cosines (in [-1, 1]) through a softmax spread over ~20 labels: a confidence far below the accuracy
    assert raw.max(axis=1).mean() < accuracy / 2
    assert calibrator.temperature < 0.5
    assert log_loss(calibrated, truth[held]) < log_loss(raw, truth[held])
    assert expected_calibration_error(calibrated, truth[held]) < expected_calibration_error(raw, truth[held])
    np.testing.assert_array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))


def test_isotonic_knots_never_decrease_with_tied_confidences():
    """Averaging the fit over tied confidences can round a flat run down by an ulp; the knots must stay monotone
    (a Calibrator refuses decreasing knots, which once stopped a training's calibration)."""
    for seed in range(300):
        rng = np.random.default_rng(seed)
        confidence = np.round(rng.random(60), 1)  # many ties
        x, y = _isotonic_knots(confidence, rng.random(60) < confidence)
        assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0), seed
        Calibrator(temperature=1.0, isotonic_x=tuple(x), isotonic_y=tuple(y))


def test_support_step_states_answers_on_few_sets_as_they_fare():
    """Same scores, same calibration so far: an answer whose label rests on one set, right a fifth of the time, is
    stated lower than one resting on fifty, right almost always; the answer itself and the rows' sums do not move."""
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    scores = rng.normal(size=(n, k))
    scores[np.arange(n), rng.integers(0, k, n)] += 4.0  # a clear top label everywhere
    support = (1, 50, 50, 50)
    top = scores.argmax(axis=1)
    right_if = np.where(top == 0, 0.2, 0.95)  # label 0 rests on one set and is mostly wrong
    truth = np.where(rng.random(n) < right_if, top, (top + 1 + rng.integers(0, k - 1, n)) % k)
    plain = fit_calibrator(scores, truth)
    calibrator = fit_calibrator(scores, truth, support=support)
    assert calibrator.support == support and len(calibrator.support_shifts) == 4
    before, after = plain.predict_proba(scores), calibrator.predict_proba(scores)
    np.testing.assert_array_equal(after.argmax(axis=1), top)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    few = top == 0
    # before: one map for every label, the few-set answers stated like the others; after: as they fare
    assert before[few].max(axis=1).mean() > 0.7 and (truth[few] == 0).mean() < 0.25
    # as low as the answer allows (the top label keeps its lead over the runner-up, here about 0.33)
    assert after[few].max(axis=1).mean() < 0.35
    assert abs(after[~few].max(axis=1).mean() - (truth[~few] == top[~few]).mean()) < 0.05
    # (pooled, one map states every answer at the overall accuracy: its ECE is ~0; the log loss sees the difference)
    assert log_loss(after, truth) < log_loss(before, truth) - 0.05
    # a set annotated leave-one-out sees one set fewer of its own label: the support given per answer is used
    many = scores[~few][:5]
    assert (calibrator.predict_proba(many, top_support=np.ones(5, int)) < after[~few][:5].max(axis=1)[:, None]).all()
    # saved and read back with it; a record of format 1 (no support step) still reads, without it
    again = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert again == calibrator and again.to_dict()["method"].endswith("+support")
    old = {k: v for k, v in calibrator.to_dict().items() if not k.startswith("support")} | {"format_version": 1}
    np.testing.assert_allclose(Calibrator.from_dict(old).predict_proba(scores), before)
    assert not Calibrator.from_dict(old).support_shifts
    with pytest.raises(ValueError, match="support of 3 labels for 4"):
        fit_calibrator(scores, truth, support=(1, 2, 3))
