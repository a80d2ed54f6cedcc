from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import bedspace as bs  # noqa: E402


def test_label_similarity_heatmap(hg19_trained, tmp_path):
    train, _ = hg19_trained
    path = tmp_path / "heat.png"
    ax = bs.pl.label_similarity(train, field="organ", groupby="organ", show=False, save=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = ax.images[0].get_array()
    organs = (train.uns["bedspace"]["labels"]["field"] == "organ").sum()
    assert image.shape == (train.n_obs, organs)
    assert [t.get_text() for t in ax.get_xticklabels()] == train.uns["bedspace"]["labels"].query("field == 'organ'")[
        "value"
    ].tolist()
    assert len(ax.lines) == train.obs["organ"].nunique() - 1  # group separators
    plt.close(ax.figure)


def test_label_similarity_into_given_axes_and_errors(hg19_trained):
    train, _ = hg19_trained
    fig, axes = plt.subplots(1, 2)
    assert bs.pl.label_similarity(train, field="assay", ax=axes[1], show=False) is axes[1]
    with pytest.raises(KeyError, match="no labels of field 'tissue'"):
        bs.pl.label_similarity(train, field="tissue", show=False)
    with pytest.raises(KeyError, match="no column 'tissue'"):
        bs.pl.label_similarity(train, groupby="tissue", show=False)
    plt.close(fig)
