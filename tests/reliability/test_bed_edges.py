"""Edges of BED input and of outputs (issue 24): spelling of chromosomes, gzip bombs, huge lines, outputs that are
not bedspace's, two writers of one collection, a full disk.

Every case asserts the exact behaviour: a warning or a one-line error naming the file, line, value or process at
fault, or the correct result; and for the outputs, that what was there before is still there.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import bedspace as bs
from bedspace import _ondisk
from bedspace._atomic import NotReplaceableError
from bedspace._formats.bed import read_intervals
from bedspace._universe import read_chrom_sizes
from bedspace.cli._demo import FIGURE_MARK

MB = 1 << 20


@pytest.fixture(scope="module")
def insulators():
    return bs.datasets.insulators()


@pytest.fixture(scope="module")
def beaf() -> bytes:
    """A real dm3 set (BEAF-32 in Kc cells), decompressed: 535 of its 2,995 intervals are on chr2L."""
    path = resources.files("bedspace.datasets") / "insulators" / "BEAF_Kc_Bushey_2009.bed.gz"
    return gzip.decompress(path.read_bytes())


def renamed(data: bytes, names: dict[str, str]) -> bytes:
    """``data`` with the chromosomes in ``names`` renamed (the first column of each line)."""
    lines = []
    for line in data.split(b"\n"):
        chrom, _, rest = line.partition(b"\t")
        lines.append(names.get(chrom.decode(), chrom.decode()).encode() + b"\t" + rest if rest else line)
    return b"\n".join(lines)


def bed_warnings(record) -> list[str]:
    return [str(w.message) for w in record if w.category is bs.BEDSpaceWarning]


def one_line_error(result, *fragments):
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- 1. chromosomes the universe spells otherwise ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelled", "universe"),
    [("Chr2L", "chr2L"), ("CHR2L", "chr2L"), ("2L", "chr2L"), ("chrx", "chrX"), ("CHRX", "chrX"), ("X", "chrX")],
)
def test_a_set_spelled_otherwise_names_the_universe_spelling(tmp_path, insulators, beaf, spelled, universe):
    """A set whose chromosome matches the universe's only up to case or a ``chr`` prefix: never silently empty."""
    lines = [line for line in beaf.split(b"\n") if line.startswith(universe.encode() + b"\t")]
    path = tmp_path / "odd.bed"
    path.write_bytes(renamed(b"\n".join(lines) + b"\n", {universe: spelled}))
    with pytest.warns(bs.BEDSpaceWarning) as record:
        adata = bs.pp.tokenize([path], insulators.universe)
    (message,) = bed_warnings(record)
    assert message.startswith("1 region set(s) share no chromosome name with the universe")
    assert message.endswith(
        f"['odd.bed']; the universe spells their chromosomes otherwise: 'odd.bed': {spelled!r} (the universe's "
        f"{universe!r}, {len(lines):,} intervals)"
    )
    assert adata.obs["n_tokens"].tolist() == [0]


@pytest.mark.parametrize(("spelled", "universe"), [("2L", "chr2L"), ("Chr2L", "chr2L"), ("chrx", "chrX")])
def test_a_file_mixing_spellings_warns_for_what_it_loses(tmp_path, insulators, beaf, spelled, universe):
    """``chr1`` and ``1`` in one file: the set shares chromosomes with the universe, but the other spelling's
    intervals get no tokens; the warning names the set, the spelling, the universe's and the count."""
    mixed = tmp_path / "mixed.bed"
    mixed.write_bytes(renamed(beaf, {universe: spelled}))
    without = tmp_path / "without.bed"
    kept = [line for line in beaf.split(b"\n") if line and not line.startswith(universe.encode() + b"\t")]
    without.write_bytes(b"\n".join(kept) + b"\n")
    lost = beaf.count(b"\n") - len(kept)
    with pytest.warns(bs.BEDSpaceWarning) as record:
        adata = bs.pp.tokenize([mixed, without], insulators.universe)
    assert bed_warnings(record) == [
        "1 region set(s) name some chromosomes otherwise than the universe "
        f"'{Path(insulators.universe).name}' does (by case or a 'chr' prefix), and their intervals there get no "
        f"tokens: 'mixed.bed': {spelled!r} (the universe's {universe!r}, {lost:,} intervals); rename them as the "
        "universe spells them"
    ]
    assert (adata.X[0] != adata.X[1]).nnz == 0  # exactly the tokens of the other chromosomes


def test_a_set_with_every_chromosome_respelled_lists_them(tmp_path, insulators, beaf):
    path = tmp_path / "upper.bed"
    path.write_bytes(beaf.replace(b"chr", b"CHR"))
    with pytest.warns(bs.BEDSpaceWarning, match=re.escape(
        "'upper.bed': 'CHR2L' (the universe's 'chr2L', 535 intervals), 'CHR2R' (the universe's 'chr2R', 582 "
        "intervals), 'CHR3L' (the universe's 'chr3L', 547 intervals), 'CHR3R' (the universe's 'chr3R', 679 "
        "intervals), 'CHR4' (the universe's 'chr4', 39 intervals) and 1 more"
    )):  # fmt: skip
        bs.pp.tokenize([path], insulators.universe)


def test_sets_spelled_as_the_universe_and_other_genomes_are_not_misspellings(tmp_path, insulators):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.BEDSpaceWarning)
        bs.pp.tokenize(insulators.beds, insulators.universe)  # the real sets: not a word
    human = tmp_path / "human.bed"
    human.write_text("chr1\t100\t200\nchr17\t5\t10\n")
    with pytest.warns(bs.BEDSpaceWarning) as record:
        bs.pp.tokenize([human], insulators.universe)
    (message,) = bed_warnings(record)
    assert "share no chromosome name" in message and message.endswith("['human.bed']")  # no spelling to offer


def test_spelling_warnings_out_of_core_as_in_memory(tmp_path, insulators, beaf):
    sets = {"mixed": tmp_path / "mixed.bed", "lower": tmp_path / "lower.bed"}
    sets["mixed"].write_bytes(renamed(beaf, {"chrX": "X"}))
    sets["lower"].write_bytes(beaf.replace(b"chr", b"Chr"))
    with pytest.warns(bs.BEDSpaceWarning) as in_memory:
        bs.pp.tokenize(sets, insulators.universe)
    with pytest.warns(bs.BEDSpaceWarning) as out_of_core:
        bs.pp.tokenize(sets, insulators.universe, out=tmp_path / "c.h5ad", chunk_size=1)
    assert len(bed_warnings(in_memory)) == 2
    assert bed_warnings(out_of_core) == bed_warnings(in_memory)


# --- 2. gzip bombs ------------------------------------------------------------------------------------------------


def gzip_stream(path: Path, block: bytes, size: int) -> Path:
    """Gzip ``size`` bytes made of ``block`` repeated, written as a stream (never ``size`` bytes in memory)."""
    with gzip.open(path, "wb", compresslevel=6) as out:
        for _ in range(size // len(block)):
            out.write(block)
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """200 MB of zeros and 200 MB of one repeated BED line, gzipped: a few hundred KB each."""
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "zeros": gzip_stream(folder / "zeros.bed.gz", bytes(MB), 200 * MB),
        "text": gzip_stream(folder / "text.bed.gz", b"chr2L\t100\t200\n" * (MB // 16), 200 * MB),
    }


def peak_reading(path: Path) -> tuple[str, int]:
    """The error reading ``path`` raises, and the peak of memory allocated meanwhile (tracemalloc)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            read_intervals(path)
        return str(info.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_of_zeros_is_named_and_read_no_further(bombs):
    path = bombs["zeros"]
    message, peak = peak_reading(path)
    assert message == (
        f"{path}: decompresses to NUL bytes (binary zeros), not text: not a BED file (zero-filled, corrupt, or "
        "never finished writing?)"
    )
    assert "UTF-16" not in message
    assert peak < 200 * MB / 20, peak  # one chunk inflated, not 200 MB


def test_a_gzip_bomb_of_one_repeated_line_is_refused_with_bounded_memory(bombs):
    path = bombs["text"]
    size = path.stat().st_size
    message, peak = peak_reading(path)
    assert re.fullmatch(
        re.escape(f"{path}: a gzip bomb or a generated file, not read: its {size:,} bytes inflate to over ")
        + r"[\d,]+ bytes \(more than \d+ times; BED text inflates 3-6 times\)\. If it is BED, decompress it "
        r"\(`gunzip -k FILE`\) and give the plain file",
        message,
    ), message
    assert peak < 200 * MB / 3, peak


def test_a_real_file_then_zeros_inside_gzip_names_the_line(tmp_path, beaf):
    path = tmp_path / "crashed.bed.gz"
    with gzip.open(path, "wb") as out:
        out.write(beaf)
        for _ in range(50):
            out.write(bytes(MB))
    message, peak = peak_reading(path)
    assert message.startswith(f"{path}, line 2996: a NUL byte (offset {len(beaf)});")
    assert peak < 25 * MB, peak


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_zero_filled_file_is_not_called_utf16(tmp_path, compress):
    path = tmp_path / "zeros.bed"
    path.write_bytes(gzip.compress(bytes(4096)) if compress else bytes(4096))
    verb = "decompresses to" if compress else "starts with"
    with pytest.raises(ValueError, match=re.escape(f"{path}: {verb} NUL bytes (binary zeros), not text")):
        read_intervals(path)
    path.write_bytes(gzip.compress("chr1\t1\t2\n".encode("utf-16-le")))  # a neighbour: real UTF-16 still is
    with pytest.raises(ValueError, match=re.escape(f"{path}: UTF-16 text, not UTF-8")):
        read_intervals(path)


def test_a_small_redundant_gzip_file_is_read(tmp_path):
    """Below 32 MB of text any redundancy is fine: 100,000 copies of one line (inflating ~300 times) is BED."""
    path = tmp_path / "same.bed.gz"
    path.write_bytes(gzip.compress(b"chr2L\t100\t200\n" * 100_000))
    assert path.stat().st_size * 100 < 14 * 100_000
    intervals = read_intervals(path)
    assert len(intervals) == 100_000 and intervals.run_chroms == ["chr2L"]


# --- 3. a huge line is quoted by its start and its length ----------------------------------------------------------

N = 50_000_000
LONG = "… (50,000,000 characters)"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        pytest.param(
            b"x" * N,
            f"fewer than 3 tab-separated columns (chrom, start, end) (the line: {'x' * 80!r}{LONG})",
            id="no-tabs",
        ),  # fmt: skip
        pytest.param(
            b"chr 1" + b"y" * N + b"\t1\t2",
            f"chromosome (column 1) {'chr 1' + 'y' * 75!r}… (50,000,005 characters) contains a space",
            id="space-in-chrom",
        ),  # fmt: skip
        pytest.param(b"chr\x0b" + b"y" * N + b"\t1\t2", "contains a control character", id="control-in-chrom"),
        pytest.param(
            b"chr1\t" + b"1" * N + b"x\t5",
            f"start (column 2) is not a non-negative integer: {'1' * 80!r}… (50,000,001 characters)",
            id="start-junk",
        ),  # fmt: skip
        pytest.param(b"chr1\t5\t" + b"2" * N + b"z", "end (column 3) is not an integer: ", id="end-junk"),
        pytest.param(
            b"chr1\t1\t" + b"9" * N, f"end (column 3) is too large: {'9' * 80}{LONG} does not fit", id="too-large"
        ),  # fmt: skip
        pytest.param(b"chr1\t-" + b"0" * N + b"5\t10", "start (column 2) is negative: -", id="negative-zeros"),
        pytest.param(
            b"chr1\t9\t" + b"0" * N + b"5",
            f"end (column 3) is smaller than start (column 2): {'0' * 80}… (50,000,001 characters) < 9",
            id="reversed-zeros",
        ),  # fmt: skip
    ],
)
def test_an_error_quotes_a_huge_line_by_its_start_and_length(tmp_path, line, fragment):
    path = tmp_path / "huge.bed"
    path.write_bytes(b"chr1\t1\t2\n" + line + b"\nchr1\t5\t6\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: ")) as info:
        read_intervals(path)
    message = str(info.value)
    assert fragment in message, message[:500]
    assert len(message) < 600, len(message)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"\xe9" * N + b"\t1\t2\n", "is not UTF-8 text", id="not-utf8"),
        pytest.param(b"chr1\t1\t2\n\xef\xbb\xbf" + b"c" * N + b"\t1\t2\n", "byte-order mark", id="bom-mid-file"),
    ],
)
def test_a_huge_chromosome_name_is_quoted_by_its_start(tmp_path, data, fragment):
    path = tmp_path / "huge.bed"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        read_intervals(path)
    message = str(info.value)
    assert fragment in message and re.search(r"… \(50,00\d,\d{3} (bytes|characters)\)", message), message[:500]
    assert len(message) < 600, len(message)


def test_other_readers_quote_a_huge_value_by_its_start(tmp_path):
    sizes = tmp_path / "dm3.chrom.sizes"
    sizes.write_text("chr2L\t23011544\n" + "z" * N + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{sizes}, line 2: expected 'chromosome<TAB>size', got ")) as info:
        read_chrom_sizes(sizes)
    assert str(info.value).endswith(f"{'z' * 80!r}{LONG}") and len(str(info.value)) < 300
    frame = pd.DataFrame({"chrom": ["chr2L"], "start": ["q" * N], "end": [10]})
    with pytest.raises(ValueError, match="^region set 'frame': start/end columns must be integers") as info:
        bs.pp.tokenize({"frame": frame}, bs.datasets.insulators().universe)
    assert len(str(info.value)) < 300


# --- 4. outputs that are not bedspace's own are never replaced; its own only with --overwrite ---------------------


@pytest.fixture(scope="module")
def work(cli, insulators, tmp_path_factory):
    """preprocess → train → distances on the bundled insulator sets."""
    work = tmp_path_factory.mktemp("edges")
    shutil.copytree(insulators.beds, work / "beds", ignore=shutil.ignore_patterns("*.csv", "*.md"))
    shutil.copy(insulators.metadata, work / "labels.csv")
    shutil.copy(insulators.universe, work / "universe.bed")
    cli("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target,cell_type",
        "-o", "pre.txt", cwd=work)  # fmt: skip
    cli("train", "-i", "pre.txt", "-o", "model", "--dim", "8", "--epochs", "2", "--threads", "1", cwd=work)
    cli("distances", "-i", "model", "-m", "labels.csv", "-u", "universe.bed", "-o", "d.h5ad", cwd=work)
    return work


DISTANCES = ("distances", "-i", "model", "-m", "labels.csv", "-u", "universe.bed")
PREPROCESS = ("preprocess", "-i", "beds", "-m", "labels.csv", "-u", "universe.bed", "-l", "target")


def foreign_files(folder: Path) -> dict[str, bytes]:
    """Files a user keeps: notes, a pickle, an .h5ad written by anndata (not bedspace)."""
    ad.AnnData(np.ones((2, 2), np.float32)).write_h5ad(folder / "theirs.h5ad")
    return {
        "notes.txt": b"three years of notes\n",
        "results.pkl": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.",
        "theirs.h5ad": (folder / "theirs.h5ad").read_bytes(),
    }


@pytest.mark.parametrize("name", ["notes.txt", "results.pkl", "theirs.h5ad"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["", "--overwrite"])
def test_distances_never_replaces_a_file_it_did_not_write(cli, work, name, overwrite):
    content = foreign_files(work)[name]
    (work / name).write_bytes(content)
    result = cli(*DISTANCES, "-o", name, *(["--overwrite"] if overwrite else []), cwd=work, check=False)
    one_line_error(result, f"refusing to replace {name}: it is not an output of bedspace of this kind, so "
                   "--overwrite does not delete it")  # fmt: skip
    assert (work / name).read_bytes() == content


def test_distances_replaces_its_own_output_only_with_overwrite(cli, work):
    before = (work / "d.h5ad").read_bytes()
    one_line_error(cli(*DISTANCES, "-o", "d.h5ad", cwd=work, check=False), "d.h5ad already exists; pass --overwrite")
    assert (work / "d.h5ad").read_bytes() == before
    shutil.copy(work / "d.h5ad", work / "d2.h5ad")
    (work / "d2.h5ad").touch()
    stamp = (work / "d2.h5ad").stat().st_mtime_ns
    time.sleep(0.01)
    cli(*DISTANCES, "-o", "d2.h5ad", "--overwrite", cwd=work)
    assert (work / "d2.h5ad").stat().st_mtime_ns > stamp
    assert ad.read_h5ad(work / "d2.h5ad").n_obs == 8


@pytest.mark.parametrize("name", ["notes.txt", "notes.txt.bedspace.h5ad"], ids=["training-file", "companion"])
def test_preprocess_never_replaces_a_file_it_did_not_write(cli, work, name):
    (work / name).write_bytes(b"mine\n")
    for extra in ([], ["--overwrite"]):
        result = cli(*PREPROCESS, "-o", "notes.txt", *extra, cwd=work, check=False)
        one_line_error(result, f"refusing to replace {name}: it is not an output of bedspace")
        assert "tokenized" not in result.stdout  # refused before any work
    assert (work / name).read_bytes() == b"mine\n"
    (work / name).unlink()


def test_preprocess_replaces_its_own_outputs_only_with_overwrite(cli, work):
    shutil.copy(work / "pre.txt", work / "again.txt")
    shutil.copy(work / "pre.txt.bedspace.h5ad", work / "again.txt.bedspace.h5ad")
    one_line_error(cli(*PREPROCESS, "-o", "again.txt", cwd=work, check=False), "again.txt already exists")
    assert (work / "again.txt").read_bytes() == (work / "pre.txt").read_bytes()
    cli(*PREPROCESS, "-o", "again.txt", "--overwrite", cwd=work)
    assert (work / "again.txt").read_bytes() != (work / "pre.txt").read_bytes()  # one label now, not two
    cli("train", "-i", "again.txt", "-o", "model_again", "--dim", "4", "--epochs", "1", "--threads", "1", cwd=work)


def test_tokenize_out_never_replaces_a_file_it_did_not_write(tmp_path, insulators):
    files = foreign_files(tmp_path)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(NotReplaceableError, match=re.escape(f"refusing to replace {tmp_path / name}")):
            bs.pp.tokenize(insulators.beds, insulators.universe, out=tmp_path / name, overwrite=True)
        assert (tmp_path / name).read_bytes() == content
    out = tmp_path / "c.h5ad"
    bs.pp.tokenize(insulators.beds, insulators.universe, out=out).file.close()
    with pytest.raises(FileExistsError, match=re.escape(f"{out} already exists; pass overwrite=True")):
        bs.pp.tokenize(insulators.beds, insulators.universe, out=out)
    bs.pp.tokenize(insulators.files[:3], insulators.universe, out=out, overwrite=True).file.close()
    assert ad.read_h5ad(out).n_obs == 3


def test_demo_never_replaces_a_figure_it_did_not_write(cli, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots()
    axis.plot([0, 1])
    fig.savefig(tmp_path / "photo.png")  # a PNG, but not a demo's
    fig.savefig(tmp_path / "earlier.png", metadata={"Creator": FIGURE_MARK})
    plt.close(fig)
    photo = (tmp_path / "photo.png").read_bytes()
    result = cli("demo", "--figure", "photo.png", cwd=tmp_path, check=False)
    one_line_error(result, "refusing to replace photo.png: it is not an output of bedspace of this kind, so the demo")
    assert "tokenized" not in result.stdout  # refused before any work
    assert (tmp_path / "photo.png").read_bytes() == photo
    one_line_error(cli("demo", "--figure", "f.txt", cwd=tmp_path, check=False), "matplotlib cannot write .txt")
    before = (tmp_path / "earlier.png").read_bytes()
    # an earlier demo's figure is replaced without asking: the demo runs again as it is
    cli("demo", "--figure", "earlier.png", "--epochs", "2", "--dim", "8", cwd=tmp_path)
    after = (tmp_path / "earlier.png").read_bytes()
    assert after != before and after[:8] == b"\x89PNG\r\n\x1a\n" and FIGURE_MARK.encode() in after


# --- 5. two processes tokenizing into one out= -------------------------------------------------------------------

TOKENIZE_RUN = """
import os, sys, time, warnings
warnings.simplefilter("ignore")
import bedspace as bs
from bedspace import _ondisk
delay, hold = float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None
tokenize_chunk = _ondisk._tokenize_chunk
done = []

def slow_chunk(*args):
    time.sleep(delay)
    # after its first chunk, held until the test lets go: however slowly a second run starts
    while done and hold and os.path.exists(hold):
        time.sleep(0.02)
    done.append(1)
    return tokenize_chunk(*args)

_ondisk._tokenize_chunk = slow_chunk
data = bs.datasets.insulators()
try:
    adata = bs.pp.tokenize(data.beds, data.universe, out=sys.argv[1], chunk_size=1, n_jobs=1)
except Exception as err:
    print(f"{type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(1)
print(adata.n_obs)
"""


def tokenize_process(out: Path, delay: float, hold: Path | None = None) -> subprocess.Popen:
    """A process tokenizing the fly sets into ``out``, ``delay`` s a chunk; after the first, none while ``hold`` exists."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(TOKENIZE_RUN), str(out), str(delay), *([str(hold)] if hold else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_whole_collection(out: Path) -> None:
    assert ad.read_h5ad(out).n_obs == 8
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no progress folder, lock or temporary


def test_a_second_tokenize_into_the_same_out_names_the_first(tmp_path, insulators):
    out, hold = tmp_path / "c.h5ad", tmp_path / "hold"
    hold.touch()
    first = tokenize_process(out, delay=0, hold=hold)
    try:
        deadline = time.monotonic() + 120
        while not list(_ondisk.partial_folder(out).glob("chunk_*.npz")):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = tokenize_process(out, delay=0)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert err.strip().splitlines()[-1] == (
            f"TimeoutError: {out} is being written by another process (pid {first.pid}, lock "
            f"{tmp_path / '.c.h5ad.lock'}); gave up waiting"
        )
        hold.unlink()
        printed, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert printed.strip() == "8"
    assert_whole_collection(out)


def test_two_tokenize_runs_started_together(tmp_path, insulators):
    out = tmp_path / "c.h5ad"
    runs = [tokenize_process(out, delay=0.2) for _ in range(2)]
    results = [(run.wait(timeout=180), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 1], results
    (message,) = [err.strip().splitlines()[-1] for code, err in results if code == 1]
    assert re.fullmatch(
        re.escape(f"TimeoutError: {out} is being written by another process (pid ")
        + r"\d+.*gave up waiting"
        + "|"
        + re.escape(f"FileExistsError: {out} already exists; pass overwrite=True to replace it"),
        message,
    ), message  # never a bare FileNotFoundError of a chunk
    assert_whole_collection(out)


# --- 6. a full disk ---------------------------------------------------------------------------------------------

FULL_DISK = """
import errno, io, os, resource, signal, sys
how, room, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if how == "limit":  # the kernel's own refusal: a file size limit (EFBIG); SIGXFSZ would kill the process first
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))
else:  # a disk with `room` bytes left for the output: ENOSPC once the file would grow past it
    from bedspace import _outputs

    class Full(io.FileIO):
        def write(self, data):
            if self.tell() + memoryview(data).nbytes > room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return super().write(data)

    _outputs.open = lambda path, mode="r", buffering=-1: Full(path, mode.replace("b", ""))
if argv[0] == "tokenize":
    import warnings
    warnings.simplefilter("ignore")
    import bedspace as bs
    data = bs.datasets.insulators()
    try:
        bs.pp.tokenize(data.beds, data.universe, out=argv[1], chunk_size=1, n_jobs=1)
    except OSError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
from bedspace.cli import main
sys.exit(main(argv))
"""


def full_disk(how: str, room: int, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK), how, str(room), *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


#: The runs of distances on a full disk: how the disk is full, the room left, the reason the error gives.
FULL_DISK_DISTANCES = [
    ("space", 100_000, "no space left on device"),
    ("limit", 20_000, "file too large (past the file size limit, `ulimit -f`"),
    ("limit", 1_000_000, "file too large (past the file size limit, `ulimit -f`"),
]


@pytest.fixture(scope="module")
def full_disk_distances(work, tmp_path_factory):
    """Each run of distances on a full disk, in a copy of ``work`` and a process of its own, two or more at once.

    ``{(how, room): (folder, result)}`` for FULL_DISK_DISTANCES, and ``"kept"``: the output exists already (an
    earlier distances, ``--overwrite``). A process spends most of its seconds compiling scanpy's UMAP code for the
    neighbour graph (on one core, whatever the room left), so the runs go side by side, not one after the other.
    """
    runs = {}
    for how, room, _ in FULL_DISK_DISTANCES:
        folder = tmp_path_factory.mktemp(f"full_{how}_{room}")
        shutil.copytree(work, folder, dirs_exist_ok=True)
        (folder / "full.h5ad").unlink(missing_ok=True)
        runs[how, room] = folder, (how, room, *DISTANCES, "-o", "full.h5ad")
    folder = tmp_path_factory.mktemp("full_kept")
    shutil.copytree(work, folder, dirs_exist_ok=True)
    shutil.copy(work / "d.h5ad", folder / "kept.h5ad")
    runs["kept"] = folder, ("space", 500_000, *DISTANCES, "-o", "kept.h5ad", "--overwrite")
    before = (folder / "kept.h5ad").read_bytes()
    with ThreadPoolExecutor(max(2, min(len(runs), len(os.sched_getaffinity(0))))) as pool:
        started = {key: pool.submit(full_disk, *args, cwd=folder) for key, (folder, args) in runs.items()}
        done = {key: (runs[key][0], run.result()) for key, run in started.items()}
    return done | {"kept before": before}


@pytest.mark.parametrize(("how", "room", "reason"), FULL_DISK_DISTANCES)
def test_distances_on_a_full_disk_is_one_line_and_leaves_no_half_file(full_disk_distances, how, room, reason):
    """Before: an h5py traceback, then a segfault at exit (HDF5 could not close a file whose write failed)."""
    work, result = full_disk_distances[how, room]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not -11: no segfault
    one_line_error(result, f"bedspace distances: error: {reason}", "writing full.h5ad; it is as it was before")
    assert not (work / "full.h5ad").exists()
    assert hidden(work) == []


def test_a_full_disk_keeps_the_earlier_output(full_disk_distances):
    work, result = full_disk_distances["kept"]
    before = full_disk_distances["kept before"]  # the earlier output, as it was before the run
    one_line_error(result, "no space left on device writing kept.h5ad; it is as it was before")
    assert (work / "kept.h5ad").read_bytes() == before
    assert hidden(work) == []


def test_preprocess_on_a_full_disk_names_the_training_file(work):
    result = full_disk("limit", 100_000, *PREPROCESS, "-o", "big.txt", cwd=work)
    one_line_error(result, "file too large", "writing big.txt; it is as it was before")
    assert not (work / "big.txt").exists() and not (work / "big.txt.bedspace.h5ad").exists()
    assert hidden(work) == []


def test_tokenize_on_a_full_disk_keeps_its_progress_and_resumes(tmp_path, insulators, monkeypatch):
    out = tmp_path / "c.h5ad"
    result = full_disk("space", 50_000, "tokenize", out, cwd=tmp_path)
    partial = _ondisk.partial_folder(out)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"OSError: no space left on device writing {out}; it is as it was before (the chunks done are kept in "
        f"{partial}: the same call resumes from them once there is room)"
    )
    assert not out.exists() and len(list(partial.glob("chunk_*.npz"))) == 8
    computed = []
    tokenize_chunk = _ondisk._tokenize_chunk
    monkeypatch.setattr(_ondisk, "_tokenize_chunk", lambda *a: computed.append(a[1]) or tokenize_chunk(*a))
    bs.pp.tokenize(insulators.beds, insulators.universe, out=out, chunk_size=1, n_jobs=1).file.close()
    assert computed == []  # every chunk came from the interrupted run
    expected = bs.pp.tokenize(insulators.beds, insulators.universe)
    assert np.array_equal(ad.read_h5ad(out).X.toarray(), expected.X.toarray())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5ad"]
