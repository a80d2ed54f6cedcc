"""A training run that diverges is an error naming ``lr``, never a model that looks trained (issue 24).

A learning rate far too large overflows the updates: to ``nan``/``inf`` (non-finite vectors) or, through the clip to
the maximum norm, to rows of zeros — regions and labels the training sets have, left without a vector, so that their
sets get zero vectors and a false warning that they "overlap no region the model knows". Both engines' results go
through one check (``bedspace/_engine/check.py``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import bedspace as bs
from bedspace import BEDSpaceWarning
from bedspace._engine import starspace as starspace_engine
from bedspace._engine.check import check_training

LABELS = ["target", "cell_type"]


@pytest.fixture(scope="module")
def collection():
    data = bs.datasets.insulators()
    return bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, chrom_sizes=data.chrom_sizes)


def train(adata, **options):
    """Train with every warning recorded (returned); an error propagates."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        bs.tl.train(adata, labels=LABELS, dim=16, epochs=5, n_threads=1, **options)
    return [str(w.message) for w in record if issubclass(w.category, BEDSpaceWarning)]


def assert_untouched(adata) -> None:
    """A failed run wrote nothing into the AnnData."""
    assert "bedspace" not in adata.varm and "X_bedspace" not in adata.obsm
    assert "bedspace_in_training" not in adata.obs


# --- the built-in engine --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lr", "options"),
    [
        (1e30, {}),
        (1e25, {}),
        (1e20, {}),
        (1e30, {"loss": "softmax"}),
        (1e20, {"loss": "softmax"}),
        (1e30, {"n_threads": 2}),
        (1e30, {"random_state": 7}),
    ],
    ids=["1e30", "1e25", "1e20", "1e30 softmax", "1e20 softmax", "1e30 two threads", "1e30 another seed"],
)
def test_a_learning_rate_that_zeroes_vectors_is_an_error_naming_it(collection, lr, options):
    adata = collection.copy()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as err:
            bs.tl.train(adata, labels=LABELS, dim=16, epochs=5, **{"n_threads": 1, **options}, lr=lr)
    message = str(err.value)
    assert message.startswith(f"the training diverged with lr={lr:g} (native backend): ")
    assert "trained regions got a zero vector" in message or "trained labels got a zero vector" in message
    assert message.endswith("train again with a smaller lr (the default is 0.05)")
    assert not [w for w in record if "overlap no region" in str(w.message)]  # never the false warning
    assert_untouched(adata)


def test_a_learning_rate_that_overflows_to_nan_is_an_error_naming_it(collection):
    adata = collection.copy()
    with pytest.raises(ValueError, match=r"diverged with lr=1e\+38 \(native backend\): .*non-finite vectors"):
        train(adata, lr=1e38, loss="softmax")
    assert_untouched(adata)


@pytest.mark.parametrize("lr", [1e10, 1e15, 1e18, 100.0, 1.0, 0.05])
def test_a_large_learning_rate_that_does_not_diverge_still_trains(collection, lr):
    """The check is not a cap on lr: rows are clipped to the maximum norm, so most large rates train."""
    adata = collection.copy()
    assert train(adata, lr=lr) == []
    assert adata.obsm["X_bedspace"].any(axis=1).all()  # every set has regions, and a vector
    trained = adata.var["n_sets"].to_numpy() > 0
    assert adata.varm["bedspace"][trained].any(axis=1).all()
    assert np.isfinite(adata.varm["bedspace"]).all()
    assert adata.uns["bedspace"]["params"]["lr"] == lr


# --- the check itself -----------------------------------------------------------------------------------------------


def vectors(rows: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)


@pytest.mark.parametrize(
    ("breaking", "expected"),
    [
        (lambda r, lab: r.__setitem__(1, 0), "1 of the 3 trained regions got a zero vector"),
        (lambda r, lab: lab.__setitem__(0, 0), "1 of the 2 trained labels got a zero vector"),
        (lambda r, lab: r.__setitem__((2, 1), np.nan), "1 of the 3 trained regions got non-finite vectors"),
        (lambda r, lab: lab.__setitem__((1, 3), np.inf), "1 of the 2 trained labels got non-finite vectors"),
    ],
    ids=["zero region", "zero label", "nan region", "inf label"],
)
def test_the_check_names_what_is_broken(breaking, expected):
    regions, labels = vectors(4), vectors(2)
    regions[3] = 0  # region 3 is in no training set: a zero vector is right for it
    breaking(regions, labels)
    with pytest.raises(ValueError, match=rf"diverged with lr=0\.5 \(native backend\): {expected} "):
        check_training(
            regions, labels, region_counts=np.array([1, 2, 5, 0]), label_counts=np.array([3, 1]), lr=0.5,
            backend="native",
        )  # fmt: skip


def test_the_check_accepts_zero_vectors_of_what_no_set_has():
    regions, labels = vectors(4), vectors(3)
    regions[[0, 3]], labels[2] = 0, 0
    check_training(regions, labels, region_counts=np.array([0, 2, 5, 0]), label_counts=np.array([3, 1, 0]), lr=1e30,
                   backend="native")  # fmt: skip


# --- the StarSpace backend, through its output reader ---------------------------------------------------------------


def fake_starspace(monkeypatch, tamper):
    """StarSpace replaced by a function writing a ``.tsv`` for every token of the training file, then ``tamper``ed."""

    def run_training(binary, train_file, workdir, params, *, n_threads, progress=None):
        lines = Path(train_file).read_text().splitlines()
        tokens = list(dict.fromkeys(token for line in lines for token in line.split(" ")))
        rows = dict(zip(tokens, vectors(len(tokens), params.dim), strict=True))
        tamper(rows, lines[0].split(" "))
        tsv = Path(workdir) / "model.tsv"
        tsv.write_text("".join(f"{t}\t" + "\t".join(f"{x:.6g}" for x in v) + "\n" for t, v in rows.items()))
        return tsv, [0.5] * params.epochs

    monkeypatch.setattr(starspace_engine, "find_binary", lambda given: Path("/stand-in/starspace"))
    monkeypatch.setattr(starspace_engine, "run_training", run_training)


def zero_first_set(rows, first):
    for token in first:
        if not token.startswith("__label__"):
            rows[token] = np.zeros_like(rows[token])


def drop_first_set(rows, first):
    for token in first:
        if not token.startswith("__label__"):
            del rows[token]


def zero_a_label(rows, first):
    label = next(t for t in first if t.startswith("__label__"))
    rows[label] = np.zeros_like(rows[label])


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (zero_first_set, r"trained regions got a zero vector"),
        (drop_first_set, r"trained regions got a zero vector"),
        (zero_a_label, r"1 of the 6 trained labels got a zero vector"),
    ],
    ids=["zero rows for a set's regions", "no rows for a set's regions", "a zero label"],
)
def test_a_starspace_model_with_zero_rows_for_trained_regions_is_an_error(collection, monkeypatch, tamper, expected):
    fake_starspace(monkeypatch, tamper)
    adata = collection.copy()
    with pytest.raises(ValueError, match=rf"diverged with lr=0\.01 \(starspace backend\): .*{expected}") as err:
        train(adata, lr=0.01, backend="starspace")
    assert "or StarSpace's .tsv has no row for them" in str(err.value)
    assert_untouched(adata)


def test_a_starspace_model_with_nan_rows_is_an_error(collection, monkeypatch):
    fake_starspace(monkeypatch, lambda rows, first: rows.__setitem__(first[0], np.full_like(rows[first[0]], np.nan)))
    with pytest.raises(ValueError, match=r"model.tsv, line 1: .*non-finite .*smaller learning rate"):
        train(collection.copy(), backend="starspace")


def test_a_sound_starspace_model_trains(collection, monkeypatch):
    fake_starspace(monkeypatch, lambda rows, first: None)
    adata = collection.copy()
    assert train(adata, backend="starspace") == []
    assert adata.obsm["X_bedspace"].any(axis=1).all()


@pytest.mark.skipif(not os.environ.get("BEDSPACE_STARSPACE"), reason="the StarSpace binary ($BEDSPACE_STARSPACE)")
def test_the_real_starspace_with_a_huge_learning_rate_is_an_error(collection):
    with pytest.raises(ValueError, match=r"lr=1e\+30|smaller learning rate"):
        train(collection.copy(), lr=1e30, backend="starspace")
