from __future__ import annotations

import gzip
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import bedspace as bs


@pytest.mark.parametrize("universe_name", ["consensus", "tiles_5kb"])
def test_matches_bedtools_on_real_files(hg19, sample_files, bedtools_tokens, universe_name, tokens_of):
    universe = hg19.universes[universe_name]
    adata = bs.pp.tokenize(sample_files, universe)
    assert adata.uns["bedspace"]["universe"]["non_overlapping"]
    for path in sample_files:
        expected = bedtools_tokens(universe, path)
        assert len(expected) > 0
        assert tokens_of(adata, path.name) == expected


@pytest.fixture(scope="module")
def overlapping_universe(hg19, sample_files, tmp_path_factory):
    """A real universe whose regions overlap: the unmerged peaks of two TF ChIP sets and one ATAC set."""
    frames = [pd.DataFrame(bs.io.read_bed(p)) for p in sample_files[2:]]
    pooled = pd.concat(frames).drop_duplicates().sort_values(["Chromosome", "Start"])
    path = tmp_path_factory.mktemp("universe") / "pooled_peaks.bed"
    path.write_text(pooled.astype({"Chromosome": str}).to_csv(sep="\t", header=False, index=False))
    return path


def test_overlapping_universe_matches_bedtools(sample_files, overlapping_universe, bedtools_tokens, tokens_of):
    adata = bs.pp.tokenize(sample_files[:3], overlapping_universe)
    assert not adata.uns["bedspace"]["universe"]["non_overlapping"]
    for path in sample_files[:3]:
        assert tokens_of(adata, path.name) == bedtools_tokens(overlapping_universe, path)


EDGE_UNIVERSE = """\
chr1\t0\t10
chr1\t10\t20
chr1\t20\t30
chr1\t40\t50
chr1\t1000\t2000
chr2\t0\t100
chr2\t100\t101
"""
EDGE_OVERLAPPING = EDGE_UNIVERSE + "chr1\t5\t25\nchr1\t15\t15\nchr2\t50\t150\n"
EDGE_SET = """\
chr2\t100\t100
chr1\t9\t10
chr1\t10\t10
chr1\t30\t40
chr1\t25\t25
chr1\t35\t1500
chrM\t0\t16000
chr1\t50\t51
"""


@pytest.mark.parametrize("universe_text", [EDGE_UNIVERSE, EDGE_OVERLAPPING], ids=["sorted", "overlapping"])
def test_edge_cases_match_bedtools(tmp_path, bedtools_tokens, universe_text, tokens_of):
    """Book-ended, zero-length, spanning, unsorted and foreign-chromosome intervals, as bedtools sees them."""
    universe = tmp_path / "u.bed"
    universe.write_text(universe_text)
    bed = tmp_path / "s.bed"
    bed.write_text(EDGE_SET)
    adata = bs.pp.tokenize([bed], universe)
    assert tokens_of(adata, "s.bed") == bedtools_tokens(universe, bed)


def test_unsorted_universe_keeps_its_order(tmp_path, bedtools_tokens, tokens_of):
    universe = tmp_path / "u.bed"
    universe.write_text("chr2\t0\t100\nchr1\t20\t30\nchr1\t0\t10\n")
    bed = tmp_path / "s.bed"
    bed.write_text("chr1\t5\t25\nchr2\t99\t300\n")
    adata = bs.pp.tokenize([bed], universe)
    assert adata.uns["bedspace"]["universe"]["non_overlapping"]
    assert adata.var_names.tolist() == ["chr2:0-100", "chr1:20-30", "chr1:0-10"]
    assert tokens_of(adata, "s.bed") == ["chr2:0-100", "chr1:20-30", "chr1:0-10"]
    assert sorted(tokens_of(adata, "s.bed")) == sorted(bedtools_tokens(universe, bed))


def test_structure_of_result(hg19_adata, hg19_metadata):
    adata = hg19_adata
    assert adata.shape == (172, 574_740)
    assert isinstance(adata.X, sp.csr_matrix)
    assert adata.X.has_sorted_indices
    assert set(np.unique(adata.X.data)) == {1.0}
    X = adata.X.copy()
    X.sum_duplicates()
    assert X.nnz == adata.X.nnz
    assert adata.obs_names.tolist() == sorted(hg19_metadata["file_name"])
    for column in ("organ", "cell_class", "assay"):
        assert isinstance(adata.obs[column].dtype, pd.CategoricalDtype)
    metadata = hg19_metadata.set_index("file_name").loc[adata.obs_names]
    np.testing.assert_array_equal(adata.obs["n_regions"], metadata["n_regions"])
    np.testing.assert_array_equal(adata.obs["n_tokens"], np.diff(adata.X.indptr))
    assert adata.obs["frac_regions_in_universe"].between(0, 1).all()
    assert list(adata.var.columns) == ["chrom", "start", "end", "n_sets"]
    assert isinstance(adata.var["chrom"].dtype, pd.CategoricalDtype)
    assert adata.var["start"].dtype == np.int64 and adata.var["end"].dtype == np.int64
    assert adata.var_names[0] == f"{adata.var['chrom'].iloc[0]}:{adata.var['start'].iloc[0]}-{adata.var['end'].iloc[0]}"
    np.testing.assert_array_equal(adata.var["n_sets"], np.asarray(adata.X.sum(axis=0)).ravel())
    # the consensus universe keeps regions supported by >= 5 files: every region is used by >= 5 sets
    assert adata.var["n_sets"].min() >= 5
    info = adata.uns["bedspace"]["universe"]
    assert info["name"] == "hg19_consensus_min5files.bed.gz" and info["n_regions"] == 574_740


def test_frac_regions_in_universe_counts_intervals(sample_files, hg19, tmp_path, bedtools):
    import subprocess

    path = sample_files[0]
    adata = bs.pp.tokenize([path], hg19.universes["consensus"])
    out = subprocess.run(
        [bedtools, "intersect", "-u", "-a", str(path), "-b", str(hg19.universes["consensus"])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = len(out.splitlines()) / adata.obs["n_regions"].iloc[0]
    assert adata.obs["frac_regions_in_universe"].iloc[0] == pytest.approx(expected)


def test_h5ad_round_trip(hg19, sample_files, tmp_path):
    adata = bs.pp.tokenize(sample_files, hg19.universes["tiles_5kb"], chrom_sizes=hg19.chrom_sizes)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert (back.X != adata.X).nnz == 0
    pd.testing.assert_frame_equal(back.var, adata.var)
    pd.testing.assert_frame_equal(back.obs, adata.obs)
    assert back.uns["bedspace"]["universe"]["chrom_sizes"]["chr1"] == 249_250_621
    assert back.uns["bedspace"]["tokenize"]["params"] == adata.uns["bedspace"]["tokenize"]["params"]


def test_query_onto_trained_universe(hg19_adata, sample_files, tokens_of):
    query = bs.pp.tokenize(sample_files[:2], hg19_adata)
    assert query.var_names.equals(hg19_adata.var_names)
    for path in sample_files[:2]:
        assert tokens_of(query, path.name) == tokens_of(hg19_adata, path.name)
    assert query.uns["bedspace"]["universe"]["name"] == hg19_adata.uns["bedspace"]["universe"]["name"]


def test_dict_of_frames_and_pyranges(hg19, sample_files):
    by_path = bs.pp.tokenize(sample_files[:2], hg19.universe)
    frames = {p.name: bs.io.read_bed(p) for p in sample_files[:2]}
    frames[sample_files[1].name] = pd.DataFrame(frames[sample_files[1].name]).rename(
        columns={"Chromosome": "chrom", "Start": "start", "End": "end"}
    )
    by_frame = bs.pp.tokenize(frames, hg19.universe)
    assert (by_frame.X != by_path.X).nnz == 0


def test_process_executor_gives_same_result(hg19, sample_files):
    threads = bs.pp.tokenize(sample_files, hg19.universe, n_jobs=2)
    serial = bs.pp.tokenize(sample_files, hg19.universe, n_jobs=1)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as executor:
        processes = bs.pp.tokenize(sample_files, hg19.universe, n_jobs=executor)
    assert (threads.X != serial.X).nnz == 0
    assert (processes.X != serial.X).nnz == 0
    pd.testing.assert_frame_equal(processes.obs, serial.obs)


def test_metadata_mismatch_lists_both_sides(hg19, hg19_metadata, tmp_path):
    folder = tmp_path / "beds"
    folder.mkdir()
    for path in hg19.files[:3]:
        shutil.copy(path, folder / path.name)
    rows = hg19_metadata.set_index("file_name").loc[[p.name for p in hg19.files[1:4]]].reset_index()
    with pytest.raises(ValueError, match="does not match") as info:
        bs.pp.tokenize(folder, hg19.universe, metadata=rows)
    message = str(info.value)
    assert "1 region set(s) have no metadata row" in message and hg19.files[0].name in message
    assert "1 metadata row(s) have no region set" in message and hg19.files[3].name in message


def test_metadata_problems(hg19, tmp_path):
    files = hg19.files[:2]
    with pytest.raises(ValueError, match="no 'file_name' column"):
        bs.pp.tokenize(files, hg19.universe, metadata=pd.DataFrame({"name": [f.name for f in files]}))
    with pytest.raises(ValueError, match="repeated"):
        bs.pp.tokenize(files, hg19.universe, metadata=pd.DataFrame({"file_name": [files[0].name] * 2}))
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        bs.pp.tokenize(files, hg19.universe, metadata=tmp_path / "labels.csv")


def test_metadata_tsv_and_label_values_kept(tmp_path, hg19):
    path = tmp_path / "labels.tsv"
    path.write_text(f"file_name\tcell_type\tscore\n{hg19.files[0].name}\tCD4+ T cell, (naive)/x\t1.5\n")
    adata = bs.pp.tokenize(hg19.files[:1], hg19.universe, metadata=path)
    assert adata.obs["cell_type"].iloc[0] == "CD4+ T cell, (naive)/x"
    assert adata.obs["score"].dtype == np.float64


def test_folder_ignores_other_files(tmp_path, hg19):
    for path in hg19.files[:2]:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "metadata.csv").write_text("file_name\n")
    (tmp_path / ".hidden.bed").write_text("chr1\t1\t2\n")
    adata = bs.pp.tokenize(tmp_path, hg19.universe)
    assert adata.obs_names.tolist() == [p.name for p in hg19.files[:2]]


def test_chromosome_naming_mismatch_warns(hg19):
    frame = pd.DataFrame({"Chromosome": ["1", "2"], "Start": [1_000_000, 2_000_000], "End": [1_001_000, 2_001_000]})
    with pytest.warns(bs.BEDSpaceWarning, match="share no chromosome name.*'chr1'.*'1'"):
        adata = bs.pp.tokenize({"ensembl_style": frame}, hg19.universe)
    assert adata.obs["n_tokens"].iloc[0] == 0


def test_empty_set_warns_and_gets_no_tokens(tmp_path, hg19):
    empty = tmp_path / "empty.bed"
    empty.write_text("")
    with pytest.warns(bs.BEDSpaceWarning, match=r"have no intervals.*empty\.bed"):
        adata = bs.pp.tokenize([empty, hg19.files[0]], hg19.universe)
    assert adata.obs.loc["empty.bed", "n_tokens"] == 0
    assert np.isnan(adata.obs.loc["empty.bed", "frac_regions_in_universe"])
    assert adata.obs.loc[hg19.files[0].name, "n_tokens"] > 0


def test_bad_inputs(tmp_path, hg19):
    with pytest.raises(FileNotFoundError, match="missing.bed"):
        bs.pp.tokenize([tmp_path / "missing.bed"], hg19.universe)
    with pytest.raises(FileNotFoundError, match="no_universe.bed"):
        bs.pp.tokenize(hg19.files[:1], tmp_path / "no_universe.bed")
    with pytest.raises(ValueError, match="no BED files in folder"):
        bs.pp.tokenize(tmp_path, hg19.universe)
    bad = tmp_path / "bad.bed.gz"
    bad.write_bytes(gzip.compress(b"chr1\t10\t20\nchr1\t30\n"))
    with pytest.raises(ValueError, match=r"bad\.bed\.gz, line 2: fewer than 3"):
        bs.pp.tokenize([bad], hg19.universe)
    with pytest.raises(ValueError, match="n_jobs"):
        bs.pp.tokenize(hg19.files[:2], hg19.universe, n_jobs=0)
    with pytest.raises(ValueError, match="names must be unique"):
        bs.pp.tokenize([hg19.files[0], hg19.files[0]], hg19.universe)
    with pytest.raises(ValueError, match="universe, row 1: end"):
        bs.pp.tokenize(hg19.files[:1], pd.DataFrame({"chrom": ["chr1"] * 2, "start": [0, 50], "end": [10, 40]}))


def test_duplicate_universe_regions_kept_once(tmp_path, hg19):
    universe = tmp_path / "u.bed"
    universe.write_text("chr1\t0\t1000000\nchr1\t0\t1000000\nchr1\t1000000\t2000000\n")
    with pytest.warns(bs.BEDSpaceWarning, match="1 universe regions are exact duplicates"):
        adata = bs.pp.tokenize(hg19.files[:1], universe)
    assert adata.n_vars == 2


def test_metadata_column_clash_with_qc(hg19, tmp_path):
    table = pd.DataFrame({"file_name": [hg19.files[0].name], "n_tokens": [-1]})
    with pytest.warns(bs.BEDSpaceWarning, match="'n_tokens' differs"):
        adata = bs.pp.tokenize(hg19.files[:1], hg19.universe, metadata=table)
    assert adata.obs["n_tokens_metadata"].iloc[0] == -1
    assert adata.obs["n_tokens"].iloc[0] > 0


@pytest.mark.parametrize("order", ["by position", "shuffled", "chromosomes interleaved"])
def test_sorted_universe_kernel_matches_brute_force(order):
    """The galloping search of a sorted universe finds exactly the rows any brute-force overlap test finds."""
    from bedspace._formats.bed import Intervals
    from bedspace._overlap import UniverseIndex

    rng = np.random.default_rng(7)
    gaps = rng.integers(0, 300, size=(2, 2000))  # adjacent, book-ended and spaced regions, two chromosomes
    widths = rng.integers(1, 400, size=(2, 2000))
    u_chrom, u_start, u_end = [], [], []
    for c, name in enumerate(["chr1", "chr2"]):
        ends = np.cumsum(gaps[c] + widths[c])
        u_chrom += [name] * ends.size
        u_start.append(ends - widths[c])
        u_end.append(ends)
    u_start, u_end, u_chrom = np.concatenate(u_start), np.concatenate(u_end), np.array(u_chrom)
    index = UniverseIndex(pd.Categorical(u_chrom), u_start, u_end)
    assert index.non_overlapping

    n = 3000
    q_chrom = rng.choice(["chr1", "chr2", "chrUn"], size=n)
    q_start = rng.integers(0, int(u_end.max()) + 500, size=n)
    q_end = q_start + rng.choice([0, 1, 50, 5000], size=n)  # zero-length, tiny, peak-sized, spanning many
    frame = pd.DataFrame({"chrom": q_chrom, "start": q_start, "end": q_end})
    if order == "by position":
        frame = frame.sort_values(["chrom", "start"], kind="stable")
    elif order == "chromosomes interleaved":
        frame = frame.sort_values("start", kind="stable")
    found = index.tokenize(Intervals.from_frame(frame, source="test"))

    lo = np.where(frame["start"] == frame["end"], np.maximum(frame["start"] - 1, 0), frame["start"]).astype(np.int64)
    hi = np.where(frame["start"] == frame["end"], frame["end"] + 1, frame["end"]).astype(np.int64)
    hits = (
        (frame["chrom"].to_numpy()[:, None] == u_chrom[None, :])
        & (lo[:, None] < u_end[None, :])
        & (hi[:, None] > u_start[None, :])
    )
    np.testing.assert_array_equal(found.tokens, np.flatnonzero(hits.any(axis=0)))
    assert found.n_regions_in_universe == int(hits.any(axis=1).sum())
