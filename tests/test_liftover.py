"""Region sets of another genome build: lifting (bs.pp.liftover), the recorded build, assembly= and the build warning."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

import bedspace as bs
from bedspace import _builds
from bedspace._download import ChecksumMismatchError
from bedspace._formats.bed import read_intervals
from bedspace._universe import Universe

# A chain file made by hand, one case of the lifting rule per chain (UCSC's format: a header, then ungapped
# blocks "size dt dq", the last one "size"):
#   chrA [0, 100) -> chrB [500, 600), a gap of 100 in chrA and 500 in chrB, chrA [200, 300) -> chrB [1100, 1200);
#   chrA [400, 500) -> chrC [0, 100); chrA [600, 700) -> chrD on the minus strand; chrA [800, 900) -> chrE and chrF.
TOY_CHAIN = """\
chain 100 chrA 1000 + 0 300 chrB 2000 + 500 1200 1
100\t100\t500
100

chain 100 chrA 1000 + 400 500 chrC 1000 + 0 100 2
100

chain 100 chrA 1000 + 600 700 chrD 1000 - 100 200 3
100

chain 100 chrA 1000 + 800 900 chrE 1000 + 0 100 4
100

chain 100 chrA 1000 + 800 900 chrF 1000 + 0 100 5
100
"""
BUILD_WARNING = "look like hg38 coordinates, not hg19"


@pytest.fixture(scope="module")
def toy_chain(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("chain") / "aToB.over.chain"
    path.write_text(TOY_CHAIN)
    return path


def test_the_lifting_rule_keeps_an_interval_whose_ends_land_together_and_counts_the_others(toy_chain):
    frame = pd.DataFrame(
        {
            "Chromosome": ["chrA"] * 7 + ["chrZ"],
            "Start": [10, 50, 120, 250, 450, 600, 810, 5],
            "End": [50, 250, 150, 451, 480, 651, 820, 9],
            "Name": list("abcdefgh"),
        }
    )
    with pytest.warns(bs.BEDSpaceWarning, match=r"dropped more than 5% .*lifted 3 of 8 regions of 'query' from a to b"):
        lifted = bs.pp.liftover(frame, source="a", target="b", chain=toy_chain)
    # [10, 50) inside a block; [450, 480) onto chrC; [600, 651) onto the minus strand, mirrored: kept, in order
    assert lifted["Name"].tolist() == ["a", "e", "f"]
    assert lifted[["Chromosome", "Start", "End"]].values.tolist() == [
        ["chrB", 510, 550], ["chrC", 50, 80], ["chrD", 849, 900],
    ]  # fmt: skip
    assert lifted.attrs["liftover"] == {
        "source": "a", "target": "b", "n_regions": 8, "n_lifted": 3, "n_dropped": 5,
        "n_unmapped": 2,  # [120, 150) lies in a gap; chrZ is not in the chain
        "n_ambiguous": 1,  # [810, 820) maps to chrE and chrF
        "n_split": 1,  # [250, 451) starts on chrB and ends on chrC
        "n_stretched": 1,  # [50, 250) spans the gap: 200 bases become 600 in chrB
    }  # fmt: skip
    # a looser stretch keeps the stretched one; the rest of the rule stays
    with pytest.warns(bs.BEDSpaceWarning):
        loose = bs.pp.liftover(frame, source="a", target="b", chain=toy_chain, max_stretch=4)
    assert loose["Name"].tolist() == ["a", "b", "e", "f"]


def test_real_sets_lifted_to_hg38_and_back_return_to_their_coordinates(sample_files, tmp_path):
    files = sample_files[1:3]  # a DNase and a TF ChIP set
    lifted = bs.pp.liftover(files, source="hg19", target="hg38", out=tmp_path / "hg38")
    assert list(lifted) == [f.name for f in files]
    assert sorted(p.name for p in (tmp_path / "hg38").iterdir()) == sorted(f.name for f in files)
    back = bs.pp.liftover(tmp_path / "hg38", source="GRCh38", target="GRCh37")
    for file in files:
        original = read_intervals(file).to_frame()
        there, again = lifted[file.name], back[file.name]
        summary = there.attrs["liftover"]
        assert summary["n_regions"] == len(original) and summary["n_lifted"] == len(there)
        assert summary["n_dropped"] == sum(summary[f"n_{r}"] for r in _builds.REASONS)
        assert summary["n_dropped"] < 0.01 * len(original)  # hg19 -> hg38 keeps nearly every peak
        assert (there[["Start", "End"]].values != original[["Start", "End"]].values[: len(there)]).any()  # moved
        for frame in (original, again):
            frame["Chromosome"] = frame["Chromosome"].astype(str)
        returned = original.merge(again, on=["Chromosome", "Start", "End"])
        assert len(returned) > 0.99 * len(original), file.name


def test_the_chain_comes_from_the_data_folder_into_the_cache_checked(hg19, monkeypatch, tmp_path):
    data = os.environ.get("BEDSPACE_DATA_DIR")
    if not data or not (Path(data) / "chains").is_dir():
        pytest.skip("needs the chain files of $BEDSPACE_DATA_DIR/chains")
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "cache"))
    spec = _builds.CHAINS[("hg38", "hg19")]
    # the download from UCSC is replaced by the local copy: a URL that cannot answer is never asked
    monkeypatch.setitem(
        _builds.CHAINS, ("hg38", "hg19"), _builds.Chain(spec.name, "https://invalid.invalid/x", spec.sha256)
    )
    path = _builds.chain_file("hg38", "hg19")
    assert path == tmp_path / "cache" / "chains" / spec.name
    copy = Path(data) / "chains" / spec.name
    assert path.read_bytes() == copy.read_bytes()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    # a copy whose sha256 is not bedspace's is refused, naming the file and both digests, and not kept
    monkeypatch.setenv("BEDSPACE_CACHE_DIR", str(tmp_path / "other"))
    monkeypatch.setitem(_builds.CHAINS, ("hg38", "hg19"), _builds.Chain(spec.name, spec.url, "0" * 64))
    with pytest.raises(
        ChecksumMismatchError, match=rf"{re.escape(spec.name)} .*sha256 is {spec.sha256}, expected 0{{64}}"
    ):
        bs.pp.liftover(pd.DataFrame({"chrom": ["chr1"], "start": [1_000_000], "end": [1_000_100]}), source="hg38")
    assert not (tmp_path / "other" / "chains" / spec.name).exists()


def test_bad_inputs_are_named(toy_chain, tmp_path):
    frame = pd.DataFrame({"chrom": ["chr1"], "start": [10], "end": [20]})
    with pytest.raises(ValueError, match=r"source='hg37' is not a genome build bedspace can lift: it knows hg19"):
        bs.pp.liftover(frame, source="hg37", target="hg19")
    with pytest.raises(ValueError, match=r"target='mm10' is not a genome build"):
        bs.pp.liftover(frame, source="hg19", target="mm10")
    with pytest.raises(FileNotFoundError, match=r"chain file not found: .*missing\.over\.chain\.gz \(chain=\)"):
        bs.pp.liftover(frame, source="mm9", target="mm10", chain=tmp_path / "missing.over.chain.gz")
    (tmp_path / "not_a_chain.txt").write_text("hello\n")
    with pytest.raises(ValueError, match=r"not_a_chain\.txt is not a (readable )?chain file"):
        bs.pp.liftover(frame, source="a", target="b", chain=tmp_path / "not_a_chain.txt")
    with pytest.raises(ValueError, match="same build"):
        bs.pp.liftover(frame, source="GRCh38", target="hg38")
    with pytest.raises(ValueError, match="max_stretch must be a number > 1"):
        bs.pp.liftover(frame, source="a", target="b", chain=toy_chain, max_stretch=1)
    with pytest.raises(FileNotFoundError, match="no_such.bed"):
        bs.pp.liftover([tmp_path / "no_such.bed"], source="a", target="b", chain=toy_chain)
    bed = tmp_path / "in" / "a.bed"
    bed.parent.mkdir()
    bed.write_text("chrA\t10\t50\n")
    with pytest.raises(ValueError, match="holds the input"):
        bs.pp.liftover(bed.parent, source="a", target="b", chain=toy_chain, out=bed.parent)
    bs.pp.liftover(bed.parent, source="a", target="b", chain=toy_chain, out=tmp_path / "out")
    assert (tmp_path / "out" / "a.bed").read_text() == "chrB\t510\t550\n"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        bs.pp.liftover(bed.parent, source="a", target="b", chain=toy_chain, out=tmp_path / "out")


# -- the recorded build, assembly= and the warning, on the bundled hg19 slice (chr21, chr22) ---------------------
@pytest.fixture(scope="module")
def built(hg19, hg19_slice, tmp_path_factory):
    """The slice tokenized as hg19 and trained small; four held-out sets and their hg38 copies."""
    adata = bs.pp.tokenize(hg19_slice.beds, hg19_slice.universe, metadata=hg19_slice.metadata, assembly="GRCh37")
    train, test = bs.pp.split(adata, stratify="organ", test_size=0.25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bs.tl.train(train, labels=["organ", "assay"], dim=8, epochs=1, random_state=0, n_threads=1)
    names = test.obs_names[:: max(1, test.n_obs // 4)][:4].tolist()
    originals = [hg19_slice.beds / name for name in names]
    folder = tmp_path_factory.mktemp("hg38")
    bs.pp.liftover(originals, source="hg19", target="hg38", out=folder)
    return adata, train, originals, [folder / name for name in names]


def _search(train, queries, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = bs.tl.search(train, [str(q) for q in queries], search_type="r2l", top_k=1, **options)
    return table, [str(w.message) for w in caught]


def test_the_build_is_recorded_and_survives_h5ad_and_model_folders(built, tmp_path):
    adata, train, _, _ = built
    assert adata.uns["bedspace"]["universe"]["assembly"] == "hg19"
    assert adata.obs["assembly"].astype(str).unique().tolist() == ["hg19"]
    assert train.uns["bedspace"]["universe"]["assembly"] == "hg19"
    train.write_h5ad(tmp_path / "train.h5ad")
    back = ad.read_h5ad(tmp_path / "train.h5ad")
    assert back.uns["bedspace"]["universe"]["assembly"] == "hg19"
    assert back.obs["assembly"].astype(str).tolist() == train.obs["assembly"].astype(str).tolist()
    assert Universe.from_anndata(back).assembly == "hg19"
    model = bs.BEDSpaceModel.from_anndata(back)
    assert model.universe.assembly == "hg19"
    model.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "model.json").read_text())["universe"]["assembly"] == "hg19"
    assert bs.BEDSpaceModel.load(tmp_path / "model").universe.assembly == "hg19"
    # a collection tokenized without a build (as before) has none, in AnnData and folders alike
    plain = bs.pp.tokenize(built[2][:2], adata)  # onto the collection's universe: it keeps the collection's build
    assert plain.uns["bedspace"]["universe"]["assembly"] == "hg19" and "assembly" not in plain.obs
    unknown = bs.pp.tokenize(built[2][:2], adata.var[["chrom", "start", "end"]])
    assert "assembly" not in unknown.uns["bedspace"]["universe"]
    assert Universe.from_anndata(unknown).assembly is None


def test_the_build_warning_names_lifted_sets_and_not_originals(built):
    _, train, originals, copies = built
    _, said = _search(train, originals)
    assert not [m for m in said if BUILD_WARNING in m]
    _, said = _search(train, copies)
    warned = [m for m in said if BUILD_WARNING in m]
    assert len(warned) == 1 and warned[0].startswith(f"{len(copies)} query(s) {BUILD_WARNING}")
    assert "assembly='hg38'" in warned[0] and "bs.pp.liftover(..., source='hg38', target='hg19')" in warned[0]
    assert all(repr(c.name) in warned[0] for c in copies)


def test_assembly_lifts_queries_onto_the_reference_build(built):
    _, train, originals, copies = built
    original, said = _search(train, originals)
    lifted, said_lifted = _search(train, copies, assembly="hg38")
    assert not [m for m in said_lifted if BUILD_WARNING in m]
    key = ["query", "field"]
    first = original.set_index(key).sort_index()
    second = lifted.set_index(key).sort_index()
    assert (first["value"] == second["value"]).mean() >= 0.75
    assert (first["probability"] - second["probability"]).abs().max() < 0.1
    model = bs.BEDSpaceModel.from_anndata(train)  # the model's search takes it too, and a DataFrame query
    frame = bs.pp.liftover(originals[0], source="hg19", target="hg38")
    table = model.search(frame, search_type="r2l", top_k=1, assembly="hg38")
    assert sorted(table["value"]) == sorted(first.loc[originals[0].name, "value"])


def test_assembly_errors_are_named(built):
    adata, train, originals, _ = built
    with pytest.raises(ValueError, match=r"assembly='hg17' is not a genome build bedspace can lift"):
        bs.tl.search(train, str(originals[0]), search_type="r2l", assembly="hg17")
    with pytest.raises(ValueError, match="assembly is an option of r2l and r2r"):
        bs.tl.search(train, "organ=blood", search_type="l2r", assembly="hg38")
    with pytest.raises(ValueError, match="an AnnData query is tokens of the universe already"):
        bs.tl.search(train, adata[:2].copy(), search_type="r2l", assembly="hg38")
    unrecorded = train.copy()
    for key in ("bedspace",):
        record = dict(unrecorded.uns[key]["universe"])
        record.pop("assembly")
        unrecorded.uns[key] = {**unrecorded.uns[key], "universe": record}
    with pytest.raises(ValueError, match=r"the genome build of the reference .* is not recorded"):
        bs.tl.search(unrecorded, str(originals[0]), search_type="r2l", assembly="hg38")


def test_tokenize_lifts_new_sets_onto_the_collection_and_refuses_mixed_builds(built, tmp_path):
    adata, _, originals, copies = built
    as_given = bs.pp.tokenize(originals, adata)
    lifted = bs.pp.tokenize(copies, adata, assembly="hg38")
    assert lifted.uns["bedspace"]["universe"]["assembly"] == "hg19"
    assert lifted.obs["assembly"].astype(str).tolist() == ["hg38"] * len(copies)
    assert (lifted.obs["liftover_dropped"] < 0.01 * lifted.obs["n_regions"]).all()
    same = as_given.X.multiply(lifted.X).sum(axis=1).A1 / as_given.X.sum(axis=1).A1
    assert same.min() > 0.98  # the same universe regions, to a few peaks lost or moved by lifting twice
    with pytest.raises(ValueError, match=r"tokenize\(out=...\) does not do"):
        bs.pp.tokenize(copies, adata, assembly="hg38", out=tmp_path / "x.h5ad")
    metadata = pd.DataFrame({"file_name": [c.name for c in copies], "assembly": ["hg19", "hg38", "hg38", "hg38"]})
    with pytest.raises(ValueError, match=r"different genome builds \(hg19: '[^']+'; hg38: '[^']+', "):
        bs.pp.tokenize(copies, adata.var[["chrom", "start", "end"]], metadata=metadata)
    with pytest.raises(ValueError, match=r"assembly='hg38', but the metadata's 'assembly' column gives 1 set"):
        bs.pp.tokenize(copies, adata.var[["chrom", "start", "end"]], metadata=metadata, assembly="hg38")


def test_search_assembly_on_the_command_line(built, cli, tmp_path):
    _, train, originals, copies = built
    bs.BEDSpaceModel.from_anndata(train).save(tmp_path / "model")
    by_python = bs.tl.search(train, str(copies[0]), search_type="r2l", top_k=1, assembly="hg38")
    done = cli("search", "-t", "r2l", "-d", tmp_path / "model", "-q", copies[0], "-n", 1, "--assembly", "hg38",
               "--format", "tsv", cwd=tmp_path)  # fmt: skip
    table = pd.read_csv(pd.io.common.StringIO(done.stdout), sep="\t")
    assert table["value"].tolist() == by_python["value"].tolist()
    assert BUILD_WARNING not in done.stderr
    refused = cli("search", "-t", "l2r", "-d", tmp_path / "model", "-q", "organ=blood", "--assembly", "hg38",
                  cwd=tmp_path, check=False)  # fmt: skip
    assert refused.returncode != 0 and "--assembly is an option of -t r2l and r2r" in refused.stderr
