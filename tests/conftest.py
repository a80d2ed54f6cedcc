from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bedspace as bs

#: Fixtures that need the real hg19 collection or bedtools: tests using them (directly or not) are marked ``data``.
DATA_FIXTURES = {"hg19", "bedtools"}


def pytest_collection_modifyitems(config, items):
    """Mark every test that needs the real data or bedtools, so ``pytest -m "not data"`` runs offline and fast."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Derived files (the dm3 universe, downloads) go to a fresh cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BEDSPACE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def hg19() -> bs.datasets.RegionSetCollection:
    """The real hg19 collection (from $BEDSPACE_DATA_DIR, or downloaded)."""
    return bs.datasets.encode_hg19()


@pytest.fixture(scope="session")
def hg19_metadata(hg19) -> pd.DataFrame:
    return pd.read_csv(hg19.metadata)


@pytest.fixture(scope="session")
def hg19_adata(hg19):
    """All 172 sets tokenized on the consensus universe (shared by read-only tests)."""
    return bs.pp.tokenize(hg19.beds, hg19.universe, metadata=hg19.metadata)


@pytest.fixture(scope="session")
def sample_files(hg19, hg19_metadata) -> list[Path]:
    """A few real sets of every kind: two DNase, two TF ChIP, one blood ATAC."""
    names = []
    for collection, n in (("encode_awg_dnase", 2), ("encode_awg_tfbs_gm12878", 2), ("heme_atac", 1)):
        names += hg19_metadata.loc[hg19_metadata["collection"] == collection, "file_name"].iloc[:n].tolist()
    return [hg19.beds / name for name in names]


@pytest.fixture(scope="session")
def bedtools() -> str:
    path = shutil.which("bedtools")
    if path is None:
        pytest.fail(
            "bedtools is needed to check tokenization against it: `apt-get install bedtools` (scripts/test.sh does)"
        )
    return path


@pytest.fixture(scope="session")
def bedtools_tokens(bedtools):
    """Universe regions (as chr:start-end names) that `bedtools intersect -u -a universe -b set` reports."""

    def run(universe: Path, bed: Path) -> list[str]:
        out = subprocess.run(
            [bedtools, "intersect", "-u", "-a", str(universe), "-b", str(bed)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fields = [line.split("\t")[:3] for line in out.splitlines() if line]
        return [f"{c}:{s}-{e}" for c, s, e in fields]

    return run


def _tokens_of(adata, name: str) -> list[str]:
    row = adata[name].X
    return adata.var_names[np.sort(row.indices)].tolist()


@pytest.fixture(scope="session")
def tokens_of():
    """Names of the universe regions a set of a tokenized collection has."""
    return _tokens_of


@pytest.fixture(scope="session")
def hg19_trained(hg19):
    """The collection on 5 kb tiles, split 75/25 by organ; the training part trained (organ, cell_class, assay)."""
    adata = bs.pp.tokenize(hg19.beds, hg19.universes["tiles_5kb"], metadata=hg19.metadata)
    train, test = bs.pp.split(adata, stratify="organ", test_size=0.25, random_state=0)
    bs.tl.train(train, labels=["organ", "cell_class", "assay"], epochs=30, random_state=0, n_threads=1)
    return train, test


@pytest.fixture(scope="session")
def hg19_slice() -> bs.datasets.RegionSetCollection:
    """The bundled slice of the hg19 collection: its 171 sets on chr21 and chr22 (offline, tokenizes in a second)."""
    return bs.datasets.encode_hg19_chr21_22()


@pytest.fixture(scope="session")
def slice_adata(hg19_slice):
    """The slice's 171 sets tokenized on its consensus universe (18,522 regions; shared by read-only tests)."""
    return bs.pp.tokenize(hg19_slice.beds, hg19_slice.universe, metadata=hg19_slice.metadata)


@pytest.fixture(scope="session")
def slice_trained(slice_adata):
    """The slice split 75/25 by organ, the training part trained (organ, cell_class, assay), as ``hg19_trained``.

    For tests of what the tools do with a trained collection (round trips, plumbing, plots) rather than of the
    whole genome: seconds instead of a minute. Read-only: copy what a test changes.
    """
    train, test = bs.pp.split(slice_adata, stratify="organ", test_size=0.25, random_state=0)
    bs.tl.train(train, labels=["organ", "cell_class", "assay"], epochs=30, random_state=0, n_threads=1)
    return train, test


def _cli_in_process(*args, cwd, check=True) -> subprocess.CompletedProcess:
    """Run the command line in this process (as ``bedspace ARGS`` in ``cwd``): what it prints and its exit code."""
    from bedspace.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse's usage errors
            code = stop.code
    result = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="session")
def cli():
    """The command line run in this process: ``cli("search", ..., cwd=folder)`` -> a ``CompletedProcess``.

    In-process keeps the command-line tests fast (no interpreter start, no imports, numba's functions loaded
    once); tests/test_cli.py, the pipeline fixture of tests/test_cli_pipeline.py and the concurrency cases run
    real processes.
    """
    return _cli_in_process
