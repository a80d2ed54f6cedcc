from __future__ import annotations

import os
import stat
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._formats.starspace import parse_label_token

FIELDS = ["organ", "cell_class", "assay"]


@pytest.fixture(scope="module")
def insulators_adata():
    data = bs.datasets.insulators()
    return bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)


def test_writes_what_it_says(insulators_adata):
    adata = insulators_adata.copy()
    result = bs.tl.train(adata, labels=["target", "cell_type"], dim=16, epochs=5)
    assert result is None
    assert adata.varm["bedspace"].shape == (adata.n_vars, 16)
    assert adata.obsm["X_bedspace"].shape == (8, 16)
    np.testing.assert_allclose(np.linalg.norm(adata.obsm["X_bedspace"], axis=1), 1, rtol=1e-5)
    record = adata.uns["bedspace"]
    assert list(record["labels"].columns) == ["field", "value"]
    assert record["labels"].index.tolist()[:4] == ["target=BEAF-32", "target=CP190", "target=CTCF", "target=Su(Hw)"]
    assert record["label_vectors"].shape == (6, 16)
    assert record["loss"].shape == (5,)
    assert record["params"]["dim"] == 16 and record["params"]["backend"] == "native"
    assert "universe" in record  # what tokenize recorded is kept
    assert adata.obs["bedspace_in_training"].all()
    # a region no set overlaps is not in the model
    assert not adata.varm["bedspace"][adata.var["n_sets"].to_numpy() == 0].any()
    # set vectors are the normalised sums of region vectors
    X = adata.X.toarray()
    sums = X @ adata.varm["bedspace"]
    np.testing.assert_allclose(adata.obsm["X_bedspace"], sums / np.linalg.norm(sums, axis=1, keepdims=True), atol=1e-5)


def test_copy_and_key_added(insulators_adata):
    adata = insulators_adata.copy()
    trained = bs.tl.train(adata, labels="target", dim=8, epochs=2, key_added="run2", copy=True)
    assert "X_run2" in trained.obsm and "run2" in trained.varm and "run2" in trained.uns
    assert "X_run2" not in adata.obsm


def test_deterministic_with_one_thread(insulators_adata):
    runs = [
        bs.tl.train(insulators_adata, labels=["target"], dim=16, epochs=5, n_threads=1, random_state=seed, copy=True)
        for seed in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0].varm["bedspace"], runs[1].varm["bedspace"])
    np.testing.assert_array_equal(runs[0].uns["bedspace"]["label_vectors"], runs[1].uns["bedspace"]["label_vectors"])
    np.testing.assert_array_equal(runs[0].uns["bedspace"]["loss"], runs[1].uns["bedspace"]["loss"])
    assert not np.array_equal(runs[0].varm["bedspace"], runs[2].varm["bedspace"])


def test_loss_decreases_on_real_data(hg19_trained):
    train, _ = hg19_trained
    loss = train.uns["bedspace"]["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert np.all(np.isfinite(loss))


def test_held_out_blood_sets_are_closest_to_blood(hg19_trained):
    """DNase blood sets never trained on land nearer organ=blood than any other organ."""
    train, test = hg19_trained
    held_out = test[(test.obs["assay"] == "DNase-seq") & (test.obs["organ"] == "blood")].copy()
    assert held_out.n_obs >= 3 and not set(held_out.obs_names) & set(train.obs_names)
    bs.tl.embed(held_out, train)
    table = train.uns["bedspace"]["labels"]
    vectors = train.uns["bedspace"]["label_vectors"]
    organs = (table["field"] == "organ").to_numpy()
    unit = vectors[organs] / np.linalg.norm(vectors[organs], axis=1, keepdims=True)
    scores = held_out.obsm["X_bedspace"] @ unit.T
    names = table.loc[organs, "value"].to_numpy()
    blood = np.flatnonzero(names == "blood")[0]
    for i, name in enumerate(held_out.obs_names):
        assert scores[i].argmax() == blood, (name, dict(zip(names, scores[i].round(3), strict=True)))


def test_dropout_trains_and_stays_reproducible(insulators_adata):
    runs = [
        bs.tl.train(insulators_adata, labels=["target"], dim=16, epochs=5, dropout=0.5, n_threads=1, copy=True)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].varm["bedspace"], runs[1].varm["bedspace"])
    plain = bs.tl.train(insulators_adata, labels=["target"], dim=16, epochs=5, n_threads=1, copy=True)
    assert not np.array_equal(plain.varm["bedspace"], runs[0].varm["bedspace"])
    assert runs[0].uns["bedspace"]["params"]["dropout"] == 0.5
    with pytest.raises(ValueError, match="dropout"):
        bs.tl.train(insulators_adata, labels=["target"], dropout=1.0)


def test_softmax_loss_trains(insulators_adata):
    adata = bs.tl.train(insulators_adata, labels=["target"], loss="softmax", dim=16, epochs=5, copy=True)
    loss = adata.uns["bedspace"]["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]


def test_h5ad_round_trip(insulators_adata, tmp_path):
    adata = bs.tl.train(insulators_adata, labels=["target", "cell_type"], dim=8, epochs=3, copy=True)
    adata.write_h5ad(tmp_path / "trained.h5ad")
    back = ad.read_h5ad(tmp_path / "trained.h5ad")
    np.testing.assert_array_equal(back.varm["bedspace"], adata.varm["bedspace"])
    np.testing.assert_array_equal(back.obsm["X_bedspace"], adata.obsm["X_bedspace"])
    np.testing.assert_array_equal(back.uns["bedspace"]["label_vectors"], adata.uns["bedspace"]["label_vectors"])
    np.testing.assert_array_equal(back.uns["bedspace"]["loss"], adata.uns["bedspace"]["loss"])
    pd.testing.assert_frame_equal(back.uns["bedspace"]["labels"], adata.uns["bedspace"]["labels"])
    assert back.uns["bedspace"]["params"]["epochs"] == 3
    assert back.obs["bedspace_in_training"].all()
    model = bs.BEDSpaceModel.from_anndata(back)
    np.testing.assert_array_equal(model.label_vectors, adata.uns["bedspace"]["label_vectors"])


def test_labels_are_namespaced_and_any_value_is_safe(insulators_adata, tmp_path):
    adata = insulators_adata.copy()
    adata.obs["a"] = pd.Categorical(["x y", "x y", "T+/CD4: naive, 2", "z"] * 2)
    adata.obs["b"] = pd.Categorical(["x y"] * 4 + [np.nan] * 3 + ["q"])
    path = bs.io.write_starspace(adata, tmp_path / "train.txt", labels=["a", "b"])
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and all(lines[:-1])
    tokens = [t for line in lines[:-1] for t in line.split(" ")]
    assert all(t and ":" not in t and "\t" not in t for t in tokens)
    labels = sorted({parse_label_token(t) for t in tokens if t.startswith("__label__")})
    assert labels == [("a", "T+/CD4: naive, 2"), ("a", "x y"), ("a", "z"), ("b", "q"), ("b", "x y")]
    assert all(not line.endswith(" ") for line in lines)
    bs.tl.train(adata, labels=["a", "b"], dim=8, epochs=2)
    assert adata.uns["bedspace"]["labels"].index.tolist() == ["a=T+/CD4: naive, 2", "a=x y", "a=z", "b=q", "b=x y"]


def test_bad_input(insulators_adata):
    adata = insulators_adata.copy()
    with pytest.raises(ValueError, match="at least one .obs column"):
        bs.tl.train(adata, labels=[])
    with pytest.raises(KeyError, match=r"no column\(s\) \['tissue'\].*available.*'target'"):
        bs.tl.train(adata, labels=["tissue"])
    adata.obs["empty"] = pd.Categorical([np.nan] * 8)
    with pytest.raises(ValueError, match="hold no values"):
        bs.tl.train(adata, labels=["empty"])
    with pytest.raises(ValueError, match="backend"):
        bs.tl.train(adata, labels=["target"], backend="gpu")
    with pytest.raises(ValueError, match="dim must be a whole number >= 1, got 0"):
        bs.tl.train(adata, labels=["target"], dim=0)
    with pytest.raises(FileNotFoundError, match="StarSpace binary not found.*backend='native'"):
        bs.tl.train(adata, labels=["target"], backend="starspace", starspace="/nonexistent/starspace")


def test_sets_without_labels_or_regions_are_left_out(insulators_adata):
    empty = pd.DataFrame({"Chromosome": ["chrU"], "Start": [0], "End": [10]})
    data = bs.datasets.insulators()
    sets = {p.name: bs.io.read_bed(p) for p in data.files[:4]} | {"nowhere": empty}
    with pytest.warns(bs.BEDSpaceWarning, match="share no chromosome"):
        adata = bs.pp.tokenize(sets, insulators_adata)
    adata.obs["target"] = pd.Categorical(["BEAF-32", "BEAF-32", "CTCF", np.nan, "CTCF"])
    with pytest.warns(bs.BEDSpaceWarning) as record:
        bs.tl.train(adata, labels="target", dim=8, epochs=2)
    messages = " ".join(str(w.message) for w in record)
    assert "1 set(s) have no value" in messages and "overlap no universe region" in messages
    assert adata.obs["bedspace_in_training"].tolist() == [True, True, True, False, False]
    assert not adata.obsm["X_bedspace"][4].any()  # no regions: zero vector
    assert adata.obsm["X_bedspace"][3].any()  # unlabelled but embedded


STAND_IN = """\
#!{python}
# Stands in for the StarSpace binary: checks the exact command line and input, writes a .tsv like StarSpace.
import sys, pathlib
args = sys.argv[1:]
expected = {expected!r}
assert args[0] == "train", args
flags = dict(zip(args[1::2], args[2::2]))
for key, value in expected.items():
    assert flags.get(key) == value, (key, flags.get(key), value)
assert "-initModel" not in flags
words, labels = {{}}, {{}}
for line in pathlib.Path(flags["-trainFile"]).read_text().split("\\n")[:-1]:
    assert line and not line.endswith(" ") and "  " not in line, repr(line[-20:])
    for token in line.split(" "):
        assert token and ":" not in token, token
        (labels if token.startswith("__label__") else words)[token] = True
dim = int(flags["-dim"])
for epoch in range(int(flags["-epoch"])):
    sys.stderr.write("\\rEpoch: 100.0%  lr: 0.01  loss: 0.1")
    print(f"\\n ---+++                Epoch    {{epoch}} Train error : {{0.5 / (epoch + 1):.8f}} +++--- x")
with open(flags["-model"] + ".tsv", "w") as out:
    for i, symbol in enumerate(list(words) + list(labels)):
        out.write(symbol + "\\t" + "\\t".join(str(round(0.001 * (i + 1) * (k + 1), 6)) for k in range(dim)) + "\\n")
"""


@pytest.fixture
def stand_in(tmp_path):
    def make(expected: dict[str, str], fail: bool = False):
        path = tmp_path / "starspace"
        body = STAND_IN.format(python=sys.executable, expected=expected)
        if fail:
            body = f"#!{sys.executable}\nimport sys\nprint('Start to initialize starspace model.')\nprint('Floating point exception')\nsys.exit(136)\n"
        path.write_text(textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        return path

    return make


def test_starspace_backend_with_stand_in(insulators_adata, stand_in):
    expected = {
        "-trainMode": "0", "-dim": "12", "-epoch": "3", "-lr": "0.02", "-negSearchLimit": "5",
        "-maxNegSamples": "10", "-margin": "0.05", "-batchSize": "5", "-loss": "hinge", "-similarity": "cosine",
        "-adagrad": "1", "-shareEmb": "1", "-thread": "2", "-label": "__label__", "-fileFormat": "fastText",
        "-useWeight": "0", "-ngrams": "1", "-dropoutLHS": "0.0", "-trainWord": "0",
    }  # fmt: skip
    binary = stand_in(expected)
    adata = bs.tl.train(
        insulators_adata, labels=["target", "cell_type"], dim=12, epochs=3, lr=0.02, backend="starspace",
        starspace=binary.parent, exclude_positives=False, n_threads=2, copy=True,
    )  # fmt: skip
    np.testing.assert_allclose(adata.uns["bedspace"]["loss"], [0.5, 0.25, 0.5 / 3], rtol=1e-6)
    assert adata.uns["bedspace"]["params"]["backend"] == "starspace"
    vectors = adata.varm["bedspace"]
    known = vectors.any(axis=1)
    assert known.sum() == (adata.var["n_sets"] > 0).sum()
    assert vectors[known][:, 1] == pytest.approx(2 * vectors[known][:, 0], rel=1e-5)  # the stand-in's pattern
    assert adata.uns["bedspace"]["label_vectors"].any(axis=1).all()
    assert adata.obsm["X_bedspace"].shape == (8, 12)


def test_plain_starspace_call_works_and_assigns_labels_once(insulators_adata, stand_in):
    """The default works with both backends; the StarSpace path builds its training examples once (one warning)."""
    adata = insulators_adata.copy()
    adata.obs["target"] = adata.obs["target"].astype(object)
    adata.obs.loc[adata.obs_names[0], "target"] = np.nan
    with pytest.warns(bs.BEDSpaceWarning, match="have no value") as record:
        bs.tl.train(adata, labels="target", dim=4, epochs=1, backend="starspace", starspace=stand_in({}))
    assert sum("have no value" in str(w.message) for w in record) == 1
    assert adata.uns["bedspace"]["params"]["exclude_positives"] is False
    with pytest.raises(ValueError, match="cannot exclude all"):
        bs.tl.train(adata, labels="target", backend="starspace", starspace=stand_in({}), exclude_positives=True)


def test_starspace_nan_vectors_are_an_error(insulators_adata, stand_in, tmp_path):
    binary = stand_in({})
    binary.write_text(binary.read_text().replace("str(round(0.001 * (i + 1) * (k + 1), 6))", '"nan"'))
    with pytest.raises(ValueError, match=r"model.tsv, line 1: .*non-finite"):
        bs.tl.train(insulators_adata, labels="target", dim=4, epochs=1, backend="starspace", starspace=binary)


def test_starspace_failure_shows_its_output(insulators_adata, stand_in):
    binary = stand_in({}, fail=True)
    with pytest.raises(bs._engine.starspace.StarSpaceError, match=r"exit code 136(.|\n)*Floating point exception"):
        bs.tl.train(insulators_adata, labels="target", backend="starspace", starspace=binary, exclude_positives=False)


def test_starspace_binary_from_environment(insulators_adata, monkeypatch):
    monkeypatch.delenv("BEDSPACE_STARSPACE", raising=False)
    with pytest.raises(FileNotFoundError, match="BEDSPACE_STARSPACE"):
        bs.tl.train(insulators_adata, labels="target", backend="starspace", exclude_positives=False)


@pytest.mark.skipif(
    not os.environ.get("BEDSPACE_STARSPACE"),
    reason="the real StarSpace binary cannot be installed from a package registry; set BEDSPACE_STARSPACE to run this",
)
def test_real_starspace_binary(insulators_adata):
    adata = bs.tl.train(
        insulators_adata, labels=["target"], dim=10, epochs=3, backend="starspace", exclude_positives=False, copy=True
    )
    assert adata.varm["bedspace"].shape == (adata.n_vars, 10)
    assert adata.uns["bedspace"]["label_vectors"].any(axis=1).all()
    assert len(adata.uns["bedspace"]["loss"]) == 3
