from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bedspace as bs


def _bed_frame(path) -> pd.DataFrame:
    frame = pd.DataFrame(bs.io.read_bed(path))
    frame["Chromosome"] = frame["Chromosome"].astype(str)
    return frame


def test_tiles_match_the_shipped_hg19_tiling(hg19):
    tiles = bs.pp.tile_universe(hg19.chrom_sizes, 5000)
    expected = _bed_frame(hg19.universes["tiles_5kb"])
    assert len(tiles) == 619_146
    got = pd.DataFrame(tiles)
    got["Chromosome"] = got["Chromosome"].astype(str)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    assert tiles.attrs["name"] == "tiles_5000bp"


def test_tiles_small():
    tiles = bs.pp.tile_universe(pd.Series({"chrA": 10, "chrB": 3}), 4)
    assert list(zip(tiles["Chromosome"].astype(str), tiles["Start"], tiles["End"], strict=True)) == [
        ("chrA", 0, 4),
        ("chrA", 4, 8),
        ("chrA", 8, 10),
        ("chrB", 0, 3),
    ]
    with pytest.raises(ValueError, match="positive"):
        bs.pp.tile_universe({"chrA": 10}, 0)


def test_chrom_sizes_file_errors(tmp_path):
    path = tmp_path / "bad.sizes"
    path.write_text("chr1\t100\nchr2\tlots\n")
    with pytest.raises(ValueError, match=r"bad\.sizes, line 2"):
        bs.pp.tile_universe(path, 10)
    with pytest.raises(FileNotFoundError, match="none.sizes"):
        bs.pp.tile_universe(tmp_path / "none.sizes", 10)


def test_consensus_matches_the_shipped_universe(hg19):
    """The rule that built hg19_consensus_min5files.bed.gz, re-run on the 172 files."""
    universe = bs.pp.consensus_universe(hg19.beds, min_sets=5)
    expected = _bed_frame(hg19.universes["consensus"])
    got = pd.DataFrame(universe)[["Chromosome", "Start", "End"]]
    got["Chromosome"] = got["Chromosome"].astype(str)
    assert len(got) == 574_740
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    assert universe["n_sets"].min() >= 5


def test_consensus_rule_on_toy_sets():
    sets = {
        "a": pd.DataFrame({"Chromosome": ["c1", "c1", "c2"], "Start": [0, 50, 0], "End": [10, 60, 5]}),
        "b": pd.DataFrame({"Chromosome": ["c1", "c1"], "Start": [10, 55], "End": [20, 70]}),  # book-ended to a
        "c": pd.DataFrame({"Chromosome": ["c1"], "Start": [5], "End": [8]}),
    }
    universe = pd.DataFrame(bs.pp.consensus_universe(sets, min_sets=2))
    assert universe[["Start", "End", "n_sets"]].to_numpy().tolist() == [[0, 20, 3], [50, 70, 2]]
    with pytest.raises(ValueError, match="more than the 3 sets"):
        bs.pp.consensus_universe(sets, min_sets=4)


def test_consensus_universe_tokenizes_like_a_file(hg19, tmp_path):
    sets = {p.name: bs.io.read_bed(p) for p in hg19.files[:8]}
    universe = bs.pp.consensus_universe(sets, min_sets=3)
    adata = bs.pp.tokenize(sets, universe)
    assert adata.n_vars == len(universe)
    assert adata.uns["bedspace"]["universe"]["name"] == "consensus_min3sets"
    np.testing.assert_array_equal(adata.var["n_sets"].to_numpy(), universe["n_sets"].to_numpy())
