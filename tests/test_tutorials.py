"""The tutorials are stored with their outputs; these tests check that the outputs are what the code shows now.

Each notebook is executed again, top to bottom in a fresh kernel (``scripts/run_tutorials.py``, which also writes
the stored outputs), and every code cell's outputs are compared with the stored ones:

* the outputs, in order, by kind (stream, result, display; a cell that raises fails the test with its error);
* text (printed lines, reprs) line by line with floating-point numbers and durations masked and spacing
  collapsed, as a multiset of lines: the last digits of scores and losses, and the order of near-tied rows,
  are noise of the machine (BLAS, numba's build) or of training on several threads;
* tables (pandas' HTML) by their header and number of rows;
* figures by presence, and their size in pixels within 10%.

Whole numbers (set counts, labels, regions) and every word are compared exactly. When a difference is intended,
refresh the stored outputs with ``python scripts/run_tutorials.py`` (see tutorials/README.md).
"""

from __future__ import annotations

import base64
import concurrent.futures
import importlib.util
import os
import re
import struct
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_tutorials", ROOT / "scripts" / "run_tutorials.py")
run_tutorials = sys.modules.setdefault("run_tutorials", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(run_tutorials)

NOTEBOOKS = run_tutorials.notebooks()
#: The notebooks that read the real hg19 collection (the others use the bundled fly sets).
NEEDS_HG19 = {"01_quickstart.ipynb", "02_annotating_region_sets.ipynb", "03_bedspace_with_scanpy.ipynb"}
#: A cell that mentions this runs the StarSpace binary when it is set; the stored outputs are from a run without.
STARSPACE = "BEDSPACE_STARSPACE"
IMAGE_SIZE_TOLERANCE = 0.10
REFRESH = "python scripts/run_tutorials.py"

_DURATION = re.compile(r"\b\d+:\d\d:\d\d(?:\.\d+)?\b")
_FLOAT = re.compile(r"[-+]?(?:\d[\d,]*)?\.\d+(?:[eE][-+]?\d+)?|[-+]?\d+[eE][-+]?\d+|\b(?:nan|inf)\b")
_SPACES = re.compile(r"[ \t]+")
_TAG = re.compile(r"<[^>]+>")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of IPython's tracebacks


def masked_lines(text: str) -> tuple[str, ...]:
    """The lines of a text, durations and floating-point numbers masked, spacing collapsed, blank lines dropped."""
    text = _FLOAT.sub("<float>", _DURATION.sub("<duration>", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return tuple(sorted(line for line in lines if line))


def table_shape(html: str) -> tuple[tuple[str, ...], int]:
    """The header cells and the number of rows of pandas' HTML table."""
    head = re.search(r"<thead>(.*?)</thead>", html, re.S)
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    header = re.findall(r"<th[^>]*>(.*?)</th>", head.group(1), re.S) if head else []
    rows = len(re.findall(r"<tr\b", body.group(1))) if body else 0
    return tuple(_TAG.sub("", cell).strip() for cell in header), rows


def png_size(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", raw[16:24])


@dataclass(frozen=True)
class Shown:
    """What one output shows, as compared: its kind and a summary of its content."""

    kind: str
    content: object

    def matches(self, other: Shown) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind.endswith("image/png"):
            return all(
                abs(a - b) <= IMAGE_SIZE_TOLERANCE * max(a, b) for a, b in zip(self.content, other.content, strict=True)
            )
        return self.content == other.content

    def __str__(self) -> str:
        if self.kind.endswith("image/png"):
            return f"{self.kind}: a figure of {self.content[0]}×{self.content[1]} px"
        if self.kind.endswith("table"):
            header, rows = self.content
            return f"{self.kind}: columns {list(header)}, {rows} rows"
        lines = "\n".join(f"      {line}" for line in self.content)
        return f"{self.kind}:\n{lines}"


def shown(cell) -> list[Shown]:
    """What a code cell shows: consecutive stream outputs merged per stream (their chunks vary run to run)."""
    result: list[Shown] = []
    streams: dict[str, str] = {}

    def end_streams():
        result.extend(Shown(f"stream {name}", masked_lines(text)) for name, text in sorted(streams.items()))
        streams.clear()

    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            streams[output.name] = streams.get(output.name, "") + output.text
            continue
        end_streams()
        if output.output_type == "error":
            result.append(Shown("error", (f"{output.ename}: {output.evalue}",)))
            continue
        data = output.get("data", {})
        kind = f"{output.output_type} [{', '.join(sorted(data))}]"
        if "image/png" in data:
            result.append(Shown(f"{kind} image/png", png_size(data["image/png"])))
        elif "<table" in data.get("text/html", ""):
            result.append(Shown(f"{kind} table", table_shape(data["text/html"])))
        else:
            result.append(Shown(f"{kind} text", masked_lines(str(data.get("text/plain", "")))))
    end_streams()
    return result


def differences(stored: list[Shown], run: list[Shown]) -> str | None:
    """How the outputs of a run differ from the stored ones, in words; None when they match."""
    if len(stored) == len(run) and all(a.matches(b) for a, b in zip(stored, run, strict=True)):
        return None
    if [s.kind for s in stored] != [r.kind for r in run]:
        return f"  stored outputs:\n{_listing(stored)}\n  outputs now:\n{_listing(run)}"
    lines = []
    for a, b in zip(stored, run, strict=True):
        if a.matches(b):
            continue
        if a.kind.endswith(("image/png", "table")):
            lines.append(f"  stored {a}\n  now    {b}")
        else:
            gone, new = Counter(a.content) - Counter(b.content), Counter(b.content) - Counter(a.content)
            lines.append(
                f"  {a.kind}, lines no longer shown:\n"
                + "".join(f"      {line}\n" for line in gone.elements())
                + "  lines shown now:\n"
                + "".join(f"      {line}\n" for line in new.elements())
            )
    return "\n".join(lines)


def _listing(outputs: list[Shown]) -> str:
    return "\n".join(f"    {output}" for output in outputs) or "    (nothing)"


def first_line(cell) -> str:
    return cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""


@pytest.fixture(scope="module")
def executions(request) -> dict[Path, concurrent.futures.Future]:
    """The selected notebooks, executed two at a time from the first test on (each kernel is its own process: the
    two cores both work); per notebook, its run to wait for."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if item.originalname == "test_stored_outputs_are_current" and item.path == Path(__file__)
    ]
    env = {STARSPACE: os.environ[STARSPACE]} if os.environ.get(STARSPACE) else {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield {path: pool.submit(run_tutorials.execute, path, **env) for path in selected}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=path.stem, marks=[pytest.mark.data] if path.name in NEEDS_HG19 else [])
        for path in NOTEBOOKS
    ],
)
def test_stored_outputs_are_current(path: Path, executions):
    """Executed now, the notebook shows what it stores (up to the noise the module docstring lists)."""
    stored = nbformat.read(path, as_version=4)
    env = {STARSPACE: os.environ[STARSPACE]} if os.environ.get(STARSPACE) else {}
    try:
        run = executions[path].result()
    except Exception as error:  # nbclient's CellExecutionError names the cell and holds the traceback
        pytest.fail(f"tutorials/{path.name} does not run top to bottom:\n{_ANSI.sub('', str(error))}", pytrace=False)
    assert [c.source for c in run.cells] == [c.source for c in stored.cells]
    problems = []
    for old, new in zip(stored.cells, run.cells, strict=True):
        if old.cell_type != "code":
            continue
        if env and STARSPACE in old.source:
            warnings.warn(
                f"{path.name} cell In [{new.execution_count}] ran the StarSpace binary (${STARSPACE} is set): "
                "its outputs are not compared, the stored ones are from a run without it",
                stacklevel=1,
            )
            continue
        difference = differences(shown(old), shown(new))
        if difference:
            problems.append(f"cell In [{new.execution_count}] (`{first_line(old)}`):\n{difference}")
    if problems:
        pytest.fail(
            f"tutorials/{path.name}: the stored outputs are not what the notebook shows now.\n\n"
            + "\n\n".join(problems)
            + f"\n\nIf the change is intended, refresh the stored outputs: {REFRESH} {path.name[:2]}"
            " (and look at the figures).",
            pytrace=False,
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_stored_outputs_are_clean(path: Path):
    """Stored as the runner writes them: executed in order, no run's metadata, nothing on stderr, no local path."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    hint = f"refresh with {REFRESH} {path.name[:2]}"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"not executed in order: {hint}"
    assert any(cell.outputs for cell in code), f"stored without outputs: {hint}"
    assert not any("execution" in cell.metadata for cell in nb.cells), f"execution timestamps stored: {hint}"
    assert "widgets" not in nb.metadata, f"widget state stored: {hint}"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], (
        "a cell writes to stderr (a warning or another library's log): the docs build (-W) fails on it; fix its cause"
    )
    assert not [o for o in outputs if run_tutorials.WIDGET in o.get("data", {})], f"a widget output stored: {hint}"
    text = nbformat.writes(nb)
    local = {str(ROOT), str(Path.home()), tempfile.gettempdir(), os.environ.get("BEDSPACE_DATA_DIR", "")} - {"", "/"}
    named = sorted(p for p in local if p in text)
    assert not named, f"the stored outputs name local paths {named}: the docs and GitHub show them; print names instead"
