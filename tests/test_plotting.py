from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import bedspace as bs  # noqa: E402


@pytest.fixture(scope="module")
def laid_out(hg19_trained):
    """The trained collection with what bs.pl draws: similarities and the neighbour graph, and both layouts."""
    adata = bs.tl.distances(hg19_trained[0], copy=True)
    bs.tl.layout(adata)
    bs.tl.layout(adata, basis="pca")
    return adata


def test_plots_draw_what_tools_wrote(hg19_trained):
    train, _ = hg19_trained
    with pytest.raises(KeyError, match=r"run bs.tl.distances\(adata\) first"):
        bs.pl.label_similarity(train, show=False)
    with pytest.raises(KeyError, match=r"run bs.tl.layout\(adata, basis='umap'\) first"):
        bs.pl.embedding(train, show=False)


def test_label_similarity_heatmap(laid_out, tmp_path):
    train = laid_out
    path = tmp_path / "heat.png"
    ax = bs.pl.label_similarity(train, field="organ", groupby="organ", show=False, save=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = ax.images[0].get_array()
    organs = (train.uns["bedspace"]["labels"]["field"] == "organ").sum()
    assert image.shape == (train.n_obs, organs)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(ticks) == sorted(train.uns["bedspace"]["labels"].query("field == 'organ'")["value"])
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(rows) == sorted(train.obs_names)
    groups = train.obs.loc[rows, "organ"].astype(str).tolist()
    assert groups == sorted(groups)  # grouped, clustered within groups
    assert len(ax.lines) == train.obs["organ"].nunique() - 1  # group separators
    plt.close(ax.figure)


def test_label_similarity_into_given_axes_and_errors(laid_out):
    train = laid_out
    fig, axes = plt.subplots(1, 2)
    assert bs.pl.label_similarity(train, field="assay", ax=axes[1], show=False) is axes[1]
    with pytest.raises(KeyError, match="no labels of field 'tissue'"):
        bs.pl.label_similarity(train, field="tissue", show=False)
    with pytest.raises(KeyError, match="no column 'tissue'"):
        bs.pl.label_similarity(train, groupby="tissue", show=False)
    plt.close(fig)


def test_joint_embedding_has_sets_and_labels(laid_out, tmp_path):
    train = laid_out
    ax = bs.pl.embedding(train, color="assay", labels="organ", show=False, save=tmp_path / "joint.png")
    assert (tmp_path / "joint.png").stat().st_size > 10_000
    set_points = sum(len(c.get_offsets()) for c in ax.collections[:-1])
    assert set_points == train.n_obs
    organs = train.uns["bedspace"]["labels"].query("field == 'organ'").index.tolist()
    assert len(ax.collections[-1].get_offsets()) == len(organs)
    assert sorted(t.get_text() for t in ax.texts) == sorted(organs)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(train.obs["assay"].cat.categories)
    plt.close(ax.figure)
    ax = bs.pl.embedding(train, color="n_regions", labels=False, basis="pca", show=False)
    assert not ax.texts and len(ax.collections) == 1
    plt.close("all")
    with pytest.raises(KeyError, match="no labels of field 'tissue'"):
        bs.pl.embedding(train, labels="tissue", show=False)


def test_search_bars(hg19_trained, tmp_path):
    train, test = hg19_trained
    result = bs.tl.search(
        train,
        test.obs_names[0] if test.obs_names[0] in train.obs_names else train.obs_names[0],
        search_type="r2l",
        top_k=6,
    )
    ax = bs.pl.search(result, show=False, save=tmp_path / "search.png")
    assert (tmp_path / "search.png").read_bytes()[:4] == b"\x89PNG"
    assert len(ax.patches) == len(result) == 6 + 6 + 3  # per field: 6 organs, 6 cell classes, the 3 assays
    assert [t.get_text() for t in ax.get_yticklabels()] == result["name"].tolist()
    assert ax.get_yticks()[0] == len(result) - 1  # the best hit on top
    assert [round(p.get_width(), 6) for p in ax.patches] == [round(s, 6) for s in result["probability"]]
    assert ax.get_xlabel() == "probability"
    plt.close(ax.figure)
    several = bs.tl.search(train, train.obs_names[:2].tolist(), search_type="r2r", top_k=3)
    with pytest.raises(ValueError, match="one query at a time"):
        bs.pl.search(several, show=False)
    ax = bs.pl.search(several[several["query"] == train.obs_names[0]], color="assay", show=False)
    assert len(ax.patches) == 3
    plt.close("all")


def test_loss_and_evaluation_plots(hg19_trained, tmp_path):
    train, test = hg19_trained
    ax = bs.pl.loss(train, show=False, save=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    line = ax.lines[0]
    assert len(line.get_xdata()) == len(train.uns["bedspace"]["loss"])
    plt.close(ax.figure)
    table = bs.tl.evaluate(train, test, fields=["organ", "assay"])
    ax = bs.pl.evaluation(table, show=False, save=tmp_path / "evaluation.png")
    assert (tmp_path / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert len(ax.patches) == 2 * 3 * 5  # fields × searches × methods
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["bedspace", "bedspace-labels", "overlap", "enrichment", "random"]
    plt.close(ax.figure)
    with pytest.raises(KeyError, match="run bs.tl.train"):
        bs.pl.loss(test, show=False)


def test_evaluation_plot_has_error_bars_over_repeats(hg19_trained, tmp_path):
    train, _ = hg19_trained
    small = train[train.obs["assay"] != "ATAC-seq"].copy()
    repeated = bs.tl.evaluate_repeated(
        small, fields=["assay"], n_splits=2, seeds=[0], train_kwargs={"epochs": 3, "dim": 16, "n_threads": 1}
    )
    ax = bs.pl.evaluation(repeated, show=False, save=tmp_path / "repeated.png")
    methods = repeated.summary["method"].unique().tolist()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == methods
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(ax.patches) == 3 * len(methods) and len(bars) == len(methods)
    assert bars[0].errorbar is not None  # the model's bars carry ± sd
    plt.close(ax.figure)


def test_scanpy_works_on_bedspace_results(hg19_trained, tmp_path):
    import scanpy as sc

    adata = hg19_trained[0].copy()
    sc.pp.neighbors(adata, use_rep="X_bedspace", n_neighbors=10)
    sc.tl.umap(adata, random_state=0)
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2) and adata.obs["leiden"].nunique() > 1
    ax = sc.pl.embedding(adata, basis="bedspace", color="assay", show=False)
    assert len(ax.collections[0].get_offsets()) == adata.n_obs
    ax.figure.savefig(tmp_path / "scanpy.png")
    plt.close("all")


def test_calibration_reliability_diagram(hg19_trained, tmp_path):
    train, test = hg19_trained
    ax = bs.pl.calibration(train, show=False, save=tmp_path / "calibration.png")
    assert (tmp_path / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    record = train.uns["bedspace"]["annotator"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "calibrated" and len(labels) == 1 + len(record["fields"])
    assert labels[1] == f"organ (ECE {record['diagnostics']['organ']['ece']:.3f})"
    # one point per non-empty bin of the held-out annotations, on the stored (confidence, accuracy)
    points = ax.collections[0].get_offsets()
    assert len(points) == len(record["reliability"]["organ"]["count"])
    plt.close(ax.figure)
    ax = bs.pl.calibration(train, fields="assay", show=False)
    assert len(ax.collections) == 1
    plt.close(ax.figure)
    with pytest.raises(KeyError, match="no reliability diagram of field"):
        bs.pl.calibration(train, fields="tissue", show=False)
    with pytest.raises(KeyError, match="no calibrated annotator"):
        bs.pl.calibration(test, show=False)
