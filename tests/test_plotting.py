from __future__ import annotations

import colorsys

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.text import Text  # noqa: E402

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


def _drawn_sets(ax, adata, field):
    """The set drawn in each row of the heatmap, found by its similarities to the labels of the columns."""
    similarity = adata.obsm["bedspace_label_similarity"]
    columns = [f"{field}={t.get_text()}" for t in ax.get_xticklabels()]
    table = similarity[columns].to_numpy()
    image = np.asarray(ax.images[0].get_array())
    found = [int(np.argmin(np.abs(table - row).sum(axis=1))) for row in image]
    assert all(np.allclose(table[i], row) for i, row in zip(found, image, strict=True))
    return adata.obs_names[found]


def _overlapping(texts) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap."""
    boxes = [(t.get_text(), Text.get_window_extent(t)) for t in texts if t.get_text() and t.get_visible()]  # no line
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1 :] if box.overlaps(other)]


def test_label_similarity_heatmap(laid_out, tmp_path):
    train = laid_out
    path = tmp_path / "heat.png"
    ax = bs.pl.label_similarity(train, field="organ", groupby="organ", show=False, save=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = ax.images[0].get_array()
    organs = train.uns["bedspace"]["labels"].query("field == 'organ'")["value"].tolist()
    assert image.shape == (train.n_obs, len(organs))
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(columns) == sorted(organs)
    # the rows are named by their groups, one name per group, readable and not on top of each other
    groups = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(groups) == sorted(train.obs["organ"].astype(str).unique())
    assert all(t.get_fontsize() >= 7 for t in [*ax.get_yticklabels(), *ax.get_xticklabels()])
    ax.figure.canvas.draw()
    assert not _overlapping(ax.get_yticklabels())
    # the diagonal: group i is the sets of label column i, drawn in that order, and its own cell block is boxed
    assert groups == columns
    drawn = train.obs.loc[_drawn_sets(ax, train, "organ"), "organ"].astype(str).tolist()
    sizes = train.obs["organ"].astype(str).value_counts()
    assert drawn == [g for g in groups for _ in range(sizes[g])]
    boxes = [(p.get_x() + 0.5, p.get_y() + 0.5) for p in ax.patches if type(p).__name__ == "Rectangle"]
    starts = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])[:-1]])
    assert boxes == [(i, start) for i, start in enumerate(starts)]
    assert len(ax.lines) == train.obs["organ"].nunique() - 1  # group separators
    plt.close(ax.figure)


def test_label_similarity_names_its_groups_by_any_column(laid_out):
    train = laid_out
    # groups that are no label of the field shown: named, each placed at the label it resembles most
    ax = bs.pl.label_similarity(train, field="organ", groupby="assay", show=False)
    groups = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(groups) == sorted(train.obs["assay"].unique())
    columns = [f"organ={t.get_text()}" for t in ax.get_xticklabels()]
    similarity = train.obsm["bedspace_label_similarity"][columns]
    best = [int(np.argmax(similarity[train.obs["assay"] == g].mean().to_numpy())) for g in groups]
    assert best == sorted(best)
    plt.close(ax.figure)
    # without groupby, one row per set, named by the set (shortened when long)
    ax = bs.pl.label_similarity(train[:20], field="assay", show=False)
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert len(rows) == 20 and all(len(r) <= 32 for r in rows)
    names = train.obs_names[:20]
    assert all(r in names or (r.endswith("…") and any(n.startswith(r[:-1]) for n in names)) for r in rows)
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
    train = laid_out.copy()
    ax = bs.pl.embedding(train, color="assay", labels="organ", show=False, save=tmp_path / "joint.png")
    assert (tmp_path / "joint.png").stat().st_size > 10_000
    set_points = sum(len(c.get_offsets()) for c in ax.collections[:-1])
    assert set_points == train.n_obs
    organs = train.uns["bedspace"]["labels"].query("field == 'organ'")
    assert len(ax.collections[-1].get_offsets()) == len(organs)
    assert sorted(t.get_text() for t in ax.texts) == sorted(organs["value"])  # one field: named by the value
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(train.obs["assay"].cat.categories)
    plt.close(ax.figure)
    ax = bs.pl.embedding(train, color="n_regions", labels=False, basis="pca", show=False)
    assert not ax.texts and len(ax.collections) == 1
    plt.close("all")
    with pytest.raises(KeyError, match="no labels of field 'tissue'"):
        bs.pl.embedding(train, labels="tissue", show=False)


def test_joint_embedding_names_only_the_field_asked_for(laid_out):
    train = laid_out.copy()
    labels = train.uns["bedspace"]["labels"]
    # color="assay" (as in the README): the three assay labels, in the assays' colours; no other label
    ax = bs.pl.embedding(train, color="assay", show=False)
    assert sorted(t.get_text() for t in ax.texts) == sorted(labels.query("field == 'assay'")["value"])
    colours = dict(zip(train.obs["assay"].cat.categories, train.uns["assay_colors"], strict=True))
    diamonds = ax.collections[-1]
    drawn = [to_hex(c) for c in diamonds.get_facecolors()]
    assert drawn == [colours[v] for v in labels.query("field == 'assay'")["value"]]
    plt.close(ax.figure)
    # every label, when asked: the names of the three fields, none covering another, markers told apart
    ax = bs.pl.embedding(train, color="assay", labels=True, show=False)
    assert len(ax.texts) == len(labels)
    ax.figure.canvas.draw()
    assert not _overlapping(ax.texts)
    keys = [t.get_text() for legend in ax.findobj(Legend) for t in legend.get_texts()]
    assert {"organ label", "cell_class label", "assay label"} <= set(keys)
    plt.close(ax.figure)


def test_joint_embedding_legend_beside_the_map_and_names_apart(laid_out):
    train = laid_out.copy()
    ax = bs.pl.embedding(train, color="organ", show=False)
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend()
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries == list(train.obs["organ"].cat.categories)  # all 22 organs
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # beside the map, not on it
    assert fig.bbox.contains(*legend.get_window_extent().p1)  # and inside the figure
    assert not _overlapping(legend.get_texts())
    assert len(ax.texts) == train.obs["organ"].nunique()
    assert not _overlapping(ax.texts)
    # no name covers a label's marker (its own, or another's); the name's own box, not its joining line's
    markers = ax.collections[-1].get_offsets()
    points = ax.transData.transform(np.asarray(markers))
    for text in ax.texts:
        box = Text.get_window_extent(text)
        assert not any(box.contains(x, y) for x, y in points), text.get_text()
    plt.close(fig)


def _hue(colour: str) -> float:
    return colorsys.rgb_to_hsv(*to_rgb(colour))[0]


def test_joint_embedding_writes_scanpy_colours(laid_out, tmp_path):
    import scanpy as sc

    train = laid_out.copy()
    assert "assay_colors" not in train.uns
    ax = bs.pl.embedding(train, color="assay", show=False)
    colours = list(train.uns["assay_colors"])
    categories = list(train.obs["assay"].cat.categories)
    assert len(colours) == len(categories) == 3
    assert all(isinstance(c, str) and c == to_hex(c) for c in colours)  # hex strings, as scanpy writes them
    assert len(set(colours)) == len(colours)
    atac, dnase = colours[categories.index("ATAC-seq")], colours[categories.index("DNase-seq")]
    difference = abs(_hue(atac) - _hue(dnase))
    assert min(difference, 1 - difference) > 0.1  # not two blues
    legend = {
        t.get_text(): to_hex(h.get_color())
        for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles, strict=True)
    }
    assert legend == dict(zip(categories, colours, strict=True))
    plt.close(ax.figure)
    # scanpy draws the same colours, and bs.pl keeps them after scanpy drew
    ax = sc.pl.embedding(train, basis="bedspace_umap", color="assay", show=False)
    scanpy_legend = {
        t.get_text(): to_hex(h.get_facecolor()[0])
        for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles, strict=True)
    }
    assert scanpy_legend == legend
    drawn = {to_hex(c) for c in ax.collections[0].get_facecolors()}
    assert drawn == set(colours)
    plt.close("all")
    bs.pl.embedding(train, color="assay", show=False)
    assert list(train.uns["assay_colors"]) == colours
    plt.close("all")
    # 22 organs: 22 different colours
    bs.pl.embedding(train, color="organ", show=False)
    organs = list(train.uns["organ_colors"])
    assert len(organs) == train.obs["organ"].cat.categories.size == len(set(organs))
    plt.close("all")
    # the colours survive an .h5ad, and are kept as they are when read back
    train.write_h5ad(tmp_path / "coloured.h5ad")
    back = ad.read_h5ad(tmp_path / "coloured.h5ad")
    assert list(back.uns["assay_colors"]) == colours
    bs.pl.embedding(back, color="assay", show=False)
    assert list(back.uns["assay_colors"]) == colours
    plt.close("all")


def test_joint_embedding_keeps_valid_colours_and_mends_the_others(laid_out):
    train = laid_out.copy()
    mine = ["#aa0000", "#00aa00", "#0000aa"]
    train.uns["assay_colors"] = list(mine)
    ax = bs.pl.embedding(train, color="assay", show=False)
    assert list(train.uns["assay_colors"]) == mine
    drawn = [to_hex(c.get_facecolors()[0]) for c in ax.collections[:3]]
    assert drawn == mine
    plt.close("all")
    train.uns["assay_colors"] = ["#aa0000", "#00aa00", "#0000aa", "#777777"]  # more than the categories
    bs.pl.embedding(train, color="assay", show=False)
    assert list(train.uns["assay_colors"]) == mine  # the first ones, as scanpy draws them
    for wrong in (["#aa0000"], ["#aa0000", "not a colour", "#0000aa"]):
        train.uns["assay_colors"] = wrong
        bs.pl.embedding(train, color="assay", show=False)
        mended = list(train.uns["assay_colors"])
        assert len(mended) == 3 and len(set(mended)) == 3 and all(c == to_hex(c) for c in mended)
    plt.close("all")
    # a column with missing values: every set drawn, the missing ones grey and called NA; a boolean column
    train.obs["half"] = train.obs["assay"].astype(object).where(np.arange(train.n_obs) % 2 == 0)
    ax = bs.pl.embedding(train, color="half", labels=False, show=False)
    assert sum(len(c.get_offsets()) for c in ax.collections) == train.n_obs
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "NA"
    plt.close("all")
    train.obs["blood"] = (train.obs["organ"] == "blood").to_numpy()
    ax = bs.pl.embedding(train, color="blood", labels=False, show=False)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["False", "True"]
    assert len(train.uns["blood_colors"]) == 2
    plt.close("all")


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


def test_evaluation_plot_has_error_bars_over_repeats(slice_trained, tmp_path):
    train, _ = slice_trained
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
