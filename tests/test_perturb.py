"""bs.datasets.perturb: synthetic sets made from real ones, bedshift-style, checked operation by operation."""

from __future__ import annotations

import gzip
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace._formats.bed import read_intervals


@pytest.fixture(scope="module")
def data(hg19) -> bs.datasets.RegionSetCollection:
    return hg19  # through the session fixture, so that these tests are marked `data` (skipped by the offline tier)


@pytest.fixture(scope="module")
def metadata(data) -> pd.DataFrame:
    return pd.read_csv(data.metadata)


@pytest.fixture(scope="module")
def few(data, metadata) -> list[Path]:
    """The smallest real set of each kind: ENCODE TF ChIP, ENCODE DNase, blood ATAC."""
    names = [
        metadata.loc[metadata["collection"] == c].sort_values("n_regions")["file_name"].iloc[0]
        for c in ("encode_awg_tfbs_gm12878", "encode_awg_dnase", "heme_atac")
    ]
    return [data.beds / n for n in names]


@pytest.fixture(scope="module")
def dnase(few) -> Path:
    return few[1]


@pytest.fixture(scope="module")
def universe_rows(data) -> set[tuple[str, int, int]]:
    return set(rows(data.universe))


def rows(path: Path) -> list[tuple[str, int, int]]:
    """The intervals of a BED file, in file order."""
    regions = read_intervals(path)
    codes, names = regions.chrom_codes()
    return list(zip(np.array(names)[codes].tolist(), regions.starts.tolist(), regions.ends.tolist(), strict=True))


def share(rate: float, n: int) -> int:
    """``round(rate × n)`` with halves rounded up, as documented."""
    return math.floor(rate * n + 0.5)


def only(result: bs.datasets.RegionSetCollection) -> Path:
    files = result.files
    assert len(files) == 1
    return files[0]


def run(tmp_path, sources, data, name="out", **options) -> bs.datasets.RegionSetCollection:
    options.setdefault("chrom_sizes", data.chrom_sizes)
    return bs.datasets.perturb(sources, data.metadata, data.universe, out_dir=tmp_path / name, **options)


def test_zero_rates_reproduce_the_sources(tmp_path, data, few):
    result = run(tmp_path, few, data, n_jobs=2)
    assert [p.name for p in result.files] == [f"{i:05d}_{p.name}" for i, p in enumerate(few)]
    for source, made in zip(few, result.files, strict=True):
        assert gzip.decompress(made.read_bytes()) == gzip.decompress(source.read_bytes())
    table = pd.read_csv(result.metadata)
    assert table["n_regions"].tolist() == [len(read_intervals(p)) for p in few]
    assert (table[["shift_rate", "add_rate", "cut_rate", "merge_rate", "drop_rate"]] == 0).all().all()


def test_zero_rates_on_the_bundled_insulators(tmp_path):
    data = bs.datasets.insulators()
    result = bs.datasets.perturb(data, out_dir=tmp_path / "out")
    assert len(result.files) == len(data.files) == 8
    for source, made in zip(data.files, result.files, strict=True):
        assert gzip.decompress(made.read_bytes()) == gzip.decompress(source.read_bytes())
    # the result carries the collection's universe and chromosome sizes
    assert result.universe == data.universe
    assert result.chrom_sizes == data.chrom_sizes


def test_drop_removes_that_share_of_the_regions(tmp_path, data, dnase):
    source = rows(dnase)
    made = rows(only(run(tmp_path, [dnase], data, drop_rate=0.3)))
    assert len(made) == len(source) - share(0.3, len(source))
    assert abs(1 - len(made) / len(source) - 0.3) < 1e-4
    assert not Counter(made) - Counter(source)  # nothing new, nothing moved
    assert made == sorted(made)


def test_add_draws_new_regions_from_the_universe(tmp_path, data, dnase, universe_rows):
    source = rows(dnase)
    made = rows(only(run(tmp_path, [dnase], data, add_rate=0.25)))
    added = Counter(made) - Counter(source)
    assert not Counter(source) - Counter(made)  # every source region is kept
    assert sum(added.values()) == share(0.25, len(source))
    assert set(added) <= universe_rows
    assert max(added.values()) == 1  # drawn without replacement
    assert made == sorted(made)


def test_add_needs_a_universe_and_enough_regions(tmp_path, data, dnase):
    with pytest.raises(ValueError, match="add_rate=0.1 draws regions from a universe"):
        bs.datasets.perturb([dnase], data.metadata, add_rate=0.1, out_dir=tmp_path / "a")
    tiny = tmp_path / "tiny_universe.bed"
    tiny.write_text("chr1\t0\t1000\nchr2\t0\t1000\n")
    with pytest.raises(ValueError, match=r"add_rate=0.5 asks for \d+ universe regions .* the universe has 2"):
        bs.datasets.perturb([dnase], data.metadata, tiny, add_rate=0.5, out_dir=tmp_path / "b")


def far_apart(path: Path, out: Path, gap: int = 5000) -> Path:
    """The regions of a real set that are ``gap`` bp from both neighbours: short shifts keep their order."""
    table = pd.DataFrame(rows(path), columns=["chrom", "start", "end"])
    same_prev = table["chrom"].eq(table["chrom"].shift())
    same_next = table["chrom"].eq(table["chrom"].shift(-1))
    before = np.where(same_prev, table["start"] - table["end"].shift(), np.inf)
    after = np.where(same_next, table["start"].shift(-1) - table["end"], np.inf)
    out.mkdir()
    table[(before > gap) & (after > gap)].to_csv(out / path.name, sep="\t", header=False, index=False)
    return out / path.name


@pytest.fixture(scope="module")
def isolated(tmp_path_factory, dnase) -> Path:
    return far_apart(dnase, tmp_path_factory.mktemp("isolated") / "beds")


def test_shift_moves_regions_by_the_given_amount(tmp_path, metadata, dnase, isolated):
    source = rows(isolated)
    table = metadata[metadata["file_name"] == dnase.name]
    result = bs.datasets.perturb(
        [isolated], table, shift_rate=0.5, shift_mean=250, shift_sd=0, out_dir=tmp_path / "out"
    )
    made = rows(only(result))
    moved = Counter(made) - Counter(source)
    left = Counter(source) - Counter(made)
    assert len(made) == len(source)
    assert sum(moved.values()) == share(0.5, len(source))
    assert Counter({(c, s - 250, e - 250): n for (c, s, e), n in moved.items()}) == left
    assert made == sorted(made)


def test_shift_draws_normal_amounts(tmp_path, metadata, dnase, isolated):
    source = pd.DataFrame(rows(isolated), columns=["chrom", "start", "end"])
    table = metadata[metadata["file_name"] == dnase.name]
    result = bs.datasets.perturb(
        [isolated], table, shift_rate=0.5, shift_mean=40, shift_sd=150, random_state=3, out_dir=tmp_path / "out"
    )
    made = pd.DataFrame(rows(only(result)), columns=["chrom", "start", "end"])
    assert len(made) == len(source) > 20_000
    assert (made["chrom"] == source["chrom"]).all()
    assert ((made["end"] - made["start"]) == (source["end"] - source["start"])).all()  # widths kept
    moves = (made["start"] - source["start"]).to_numpy()
    k = share(0.5, len(source))
    # rint(N(40, 150)) is 0 with probability ~0.25%: a few chosen regions do not move
    assert k - 0.01 * k <= np.count_nonzero(moves) <= k
    shifted = moves[moves != 0]
    assert abs(shifted.mean() - 40) < 4 * 150 / math.sqrt(k)
    assert abs(shifted.std() - 150) < 0.03 * 150


def test_shift_is_clipped_at_the_chromosome_ends(tmp_path, data, dnase):
    sizes = pd.read_csv(data.chrom_sizes, sep="\t", header=None, index_col=0)[1].to_dict()
    source = pd.DataFrame(rows(dnase), columns=["chrom", "start", "end"])
    for mean, name in ((-300_000_000, "left"), (300_000_000, "right")):
        made = pd.DataFrame(
            rows(only(run(tmp_path, [dnase], data, name, shift_rate=1.0, shift_mean=mean, shift_sd=0))),
            columns=["chrom", "start", "end"],
        )
        assert len(made) == len(source)
        assert (made["start"] >= 0).all() and (made["end"] > made["start"]).all()
        assert sorted(made["end"] - made["start"]) == sorted(source["end"] - source["start"])
        if mean < 0:
            assert (made["start"] == 0).all()
        else:
            assert (made["end"] == made["chrom"].map(sizes)).all()


def test_cut_splits_regions_at_their_midpoint(tmp_path, data, dnase):
    source = rows(dnase)
    made = rows(only(run(tmp_path, [dnase], data, cut_rate=0.2)))
    k = share(0.2, len(source))
    assert len(made) == len(source) + k
    cut = Counter(source) - Counter(made)
    halves = Counter(made) - Counter(source)
    assert sum(cut.values()) == k
    expected = Counter()
    for (c, s, e), n in cut.items():
        expected[(c, s, (s + e) // 2)] += n
        expected[(c, (s + e) // 2, e)] += n
    assert halves == expected
    assert made == sorted(made)


def test_merge_joins_neighbours(tmp_path, data, dnase):
    source = rows(dnase)
    made = rows(only(run(tmp_path, [dnase], data, merge_rate=0.1)))
    k = share(0.1, len(source))
    assert len(made) == len(source) - k
    absorbed = Counter(source) - Counter(made)
    joined = Counter(made) - Counter(source)
    by_start = {(c, s): i for i, (c, s, _) in enumerate(source)}
    assert len(by_start) == len(source)  # starts are unique in this set: a merged region names its first
    covered = Counter()
    for c, s, e in joined:
        first = by_start[(c, s)]
        last = first
        while source[last][2] < e:  # the next regions on the chromosome, up to the one ending there
            last += 1
            assert source[last][0] == c
        assert last > first and source[last][2] == e
        covered.update(source[first : last + 1])
    assert covered == absorbed
    assert sum(absorbed.values()) - sum(joined.values()) == k


def test_same_seed_same_files_whatever_the_threads(tmp_path, data, few):
    options = {"n_sets": 6, "shift_rate": 0.3, "add_rate": 0.2, "cut_rate": 0.1, "merge_rate": 0.1, "drop_rate": 0.2}
    one = run(tmp_path, few, data, "one", n_jobs=1, random_state=7, **options)
    two = run(tmp_path, few, data, "two", n_jobs=2, random_state=7, **options)
    other = run(tmp_path, few, data, "other", n_jobs=2, random_state=8, **options)
    assert [p.name for p in one.files] == [p.name for p in two.files] == [p.name for p in other.files]
    for a, b, c in zip(one.files, two.files, other.files, strict=True):
        assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert one.metadata.read_bytes() == two.metadata.read_bytes()
    # the first sets of a larger run are the same files
    more = run(tmp_path, few, data, "more", n_jobs=2, random_state=7, **{**options, "n_sets": 9})
    for a, b in zip(one.files, more.files[:6], strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_metadata_inherits_the_source_labels(tmp_path, data, metadata, few):
    result = run(tmp_path, few, data, n_sets=7, shift_rate=0.1, drop_rate=0.1, add_rate=0.1)
    adata = bs.pp.tokenize(result.beds, data.universe, metadata=result.metadata)
    assert adata.n_obs == 7
    obs = adata.obs
    # cycling: every source in turn
    assert obs["source_file"].tolist() == [few[i % 3].name for i in range(7)]
    labels = metadata.set_index("file_name").loc[obs["source_file"].astype(str)]
    for field in ("organ", "cell_class", "assay", "cell_type", "collection"):
        assert obs[field].astype(str).tolist() == labels[field].astype(str).tolist()
    assert obs["synthetic"].all()
    assert (obs["drop_rate"] == 0.1).all() and (obs["shift_sd"] == 150).all()
    assert obs["seed"].nunique() == 7
    # n_regions is the synthetic set's own: tokenize would warn (an error here) if it differed from its count
    assert (obs["n_regions"] != labels["n_regions"].to_numpy()).all()
    # random sampling draws sources with replacement
    drawn = run(tmp_path, few, data, "random", n_sets=12, sampling="random")
    assert set(pd.read_csv(drawn.metadata)["source_file"]) <= {p.name for p in few}


def test_a_collection_in_the_default_cache_folder():
    data = bs.datasets.insulators()
    first = bs.datasets.perturb(data, n_sets=16, drop_rate=0.2, add_rate=0.2, shift_rate=0.5, merge_rate=0.05)
    assert first.beds.parent == bs.datasets.cache_dir() / "perturbed"
    stamps = {p.name: p.stat().st_mtime_ns for p in first.files}
    again = bs.datasets.perturb(data, n_sets=16, drop_rate=0.2, add_rate=0.2, shift_rate=0.5, merge_rate=0.05)
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in again.files} == stamps  # reused, not rewritten
    other = bs.datasets.perturb(data, n_sets=16, drop_rate=0.3)
    assert other.beds != first.beds
    relabelled = pd.read_csv(data.metadata).assign(target="another")
    assert bs.datasets.perturb(data, relabelled, n_sets=16, drop_rate=0.3).beds != other.beds
    adata = bs.pp.tokenize(first.beds, data.universe, metadata=first.metadata)
    assert adata.obs["target"].value_counts().to_dict() == {"BEAF-32": 4, "CP190": 4, "CTCF": 4, "Su(Hw)": 4}
    assert (adata.obs["frac_regions_in_universe"] == 1).all()  # shifts stop at the tiled extent


def test_an_interrupted_run_resumes(tmp_path, data, few):
    options = {"n_sets": 5, "drop_rate": 0.2, "add_rate": 0.2, "random_state": 1}
    full = run(tmp_path, few, data, "full", **options)
    partial = run(tmp_path, few, data, "partial", **options)
    partial.metadata.unlink()
    for path in partial.files[2:]:
        path.unlink()
    (partial.beds / ".00004_x.bed.gz.abc.tmp").write_bytes(b"half a file")
    resumed = run(tmp_path, few, data, "partial", **options)
    assert [p.read_bytes() for p in resumed.files] == [p.read_bytes() for p in full.files]
    assert resumed.metadata.read_bytes() == full.metadata.read_bytes()
    assert not list(resumed.beds.glob(".*.tmp"))
    with pytest.raises(FileExistsError, match=r"perturbed differently \(other options \['drop_rate'\]\)"):
        run(tmp_path, few, data, "partial", **{**options, "drop_rate": 0.5})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not empty"):
        run(tmp_path, few, data, "busy", **options)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("drop_rate", -0.1, r"drop_rate must be between 0 and 1 .*; got -0.1"),
        ("drop_rate", 1.5, r"drop_rate must be between 0 and 1 .*; got 1.5"),
        ("drop_rate", float("nan"), r"drop_rate must be a finite number, got nan"),
        ("shift_rate", 2, r"shift_rate must be between 0 and 1 .*; got 2"),
        ("cut_rate", float("nan"), r"cut_rate must be a finite number, got nan"),
        ("merge_rate", -1, r"merge_rate must be between 0 and 1 .*; got -1"),
        ("add_rate", -0.5, r"add_rate must be >= 0, got -0.5"),
        ("add_rate", float("inf"), r"add_rate must be a finite number, got inf"),
        ("add_rate", "lots", r"add_rate must be a finite number, got 'lots'"),
        ("shift_sd", -1, r"shift_sd must be >= 0, got -1"),
        ("shift_mean", float("nan"), r"shift_mean must be a finite number, got nan"),
        ("n_sets", 0, r"n_sets must be an integer >= 1, got 0"),
        ("n_sets", 2.5, r"n_sets must be an integer >= 1, got 2.5"),
        ("n_jobs", 0, r"n_jobs must be an integer >= 1, got 0"),
        ("random_state", -1, r"random_state must be an integer >= 0, got -1"),
        ("sampling", "bogus", r"sampling must be 'cycle' or 'random', got 'bogus'"),
    ],
)
def test_bad_options_are_named(tmp_path, data, few, option, value, message):
    with pytest.raises(ValueError, match=message):
        run(tmp_path, few, data, **{option: value})
    assert not (tmp_path / "out").exists()


def test_every_source_needs_a_metadata_row(tmp_path, data, metadata, few):
    table = metadata[metadata["file_name"] != few[0].name]
    with pytest.raises(ValueError, match=f"no row for 1 source file.*{few[0].name}"):
        bs.datasets.perturb(few, table, out_dir=tmp_path / "out")
