"""bedspace leaves the process's logging as it found it (pyranges1 configures it at import).

Each test runs Python in a fresh process: what a module does when first imported happens once per process.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bedspace"

#: What imports pyranges1 in bedspace: the bundled fly collection's universe made in a fresh cache
#: (``pp.tile_universe``), tokenizing onto a universe whose regions overlap each other, ``io.read_bed``, and a
#: PyRanges written out (pyranges1 loads its output module, which configures logging too, on first use).
PYRANGES_PATHS = """
import numpy as np
import pandas as pd
import bedspace as bs

data = bs.datasets.insulators()
tiles = bs.pp.tile_universe(data.chrom_sizes, 5000)
frame = pd.DataFrame(tiles)
halves = frame.assign(End=np.minimum(frame["Start"] + 2500, frame["End"]))
adata = bs.pp.tokenize(data.beds, pd.concat([frame, halves]), metadata=data.metadata, n_jobs=1)
assert adata.X.nnz > 0
bs.io.read_bed(data.files[0])
tiles.to_bed(OUT / "tiles.bed")
assert "pyranges1" in sys.modules
"""


def run_python(code: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with a fresh bedspace cache; ``OUT`` is ``tmp_path`` there."""
    script = "import sys\nfrom pathlib import Path\nOUT = Path(sys.argv[1])\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "BEDSPACE_CACHE_DIR": str(tmp_path / "cache"), **env},
    )


def run_bedspace(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bedspace", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "BEDSPACE_CACHE_DIR": str(tmp_path / "cache"), **env},
    )


def test_root_logger_kept_through_import_and_pyranges(tmp_path):
    code = f"""
    import json, logging
    root = logging.getLogger()
    def state():
        return [root.level, [id(handler) for handler in root.handlers]]
    states = {{"before": state()}}
    import bedspace as bs
    for name in ("annotate", "datasets", "io", "pl", "pp", "tl"):
        getattr(bs, name)
    states["imported"] = state()
    states["pyranges_on_import"] = "pyranges1" in sys.modules
    {textwrap.indent(PYRANGES_PATHS, "    ").strip()}
    states["used"] = state()
    (OUT / "states.json").write_text(json.dumps(states))
    logging.getLogger("matplotlib").info("matplotlib says hello")
    logging.getLogger("pyranges1").info("pyranges1 says hello")
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    states = json.loads((tmp_path / "states.json").read_text())
    assert states["before"] == [30, []]  # Python's default: WARNING, no handler
    assert states["imported"] == states["before"]
    assert not states["pyranges_on_import"]  # `import bedspace` and its submodules stay fast
    assert states["used"] == states["before"]
    assert "says hello" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("INFO:")]


USER_LOGGING = {
    # the root logger configured: its handler and level kept, a warning printed once, in the user's format
    "root": (
        """
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="user %(levelname)s %(name)s: %(message)s")
        mine = logging.getLogger()
        """,
        ["user WARNING matplotlib: careful"],
        ["careful", "chatter", "hello"],
    ),
    # only the application's logger configured: its messages printed once, not also by a handler on the root
    "application": (
        """
        mine = logging.getLogger("myapp")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("myapp: %(message)s"))
        mine.addHandler(handler)
        mine.setLevel(logging.INFO)
        """,
        ["myapp: hello"],
        ["chatter", "hello"],  # the warning goes to stderr as without bedspace (logging's last resort)
    ),
}


def _user_logging_kept(which: str, tmp_path: Path) -> None:
    setup, printed, not_on_stderr = USER_LOGGING[which]
    code = f"""
    import json, logging
    {textwrap.dedent(setup).strip().replace(chr(10), chr(10) + "    ")}
    def state(logger):
        return [logger.level, [id(h) for h in logger.handlers], logger.propagate]
    before = {{"mine": state(mine), "root": state(logging.getLogger())}}
    {textwrap.indent(PYRANGES_PATHS, "    ").strip()}
    after = {{"mine": state(mine), "root": state(logging.getLogger())}}
    (OUT / "states.json").write_text(json.dumps([before, after]))
    logging.getLogger("matplotlib").warning("careful")
    logging.getLogger("matplotlib").info("chatter")
    logging.getLogger("myapp").info("hello")
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    before, after = json.loads((tmp_path / "states.json").read_text())
    assert after == before
    assert result.stdout.splitlines() == printed
    for words in not_on_stderr:
        assert words not in result.stderr


def test_users_root_logging_kept(tmp_path):
    _user_logging_kept("root", tmp_path)


def test_users_application_logger_prints_once(tmp_path):
    _user_logging_kept("application", tmp_path)


def test_help_prints_nothing_on_stderr(tmp_path):
    for args in (["--help"], ["demo", "--help"]):
        result = run_bedspace(tmp_path, *args)
        assert result.returncode == 0
        assert result.stdout.startswith("usage: bedspace")
        assert result.stderr == ""


def test_demo_prints_no_info_of_matplotlib(tmp_path):
    """The demo's reported symptom: ``INFO:matplotlib.font_manager:generated new fontManager`` on stderr.

    A fresh bedspace cache makes the demo build the fly universe with pyranges1 first; a fresh matplotlib config
    folder makes matplotlib build its font cache, and say so at INFO, when the figure's format is checked next (an
    unknown one, so that the demo stops there).
    """
    figure = tmp_path / "demo.nope"
    result = run_bedspace(tmp_path, "demo", "--figure", str(figure), MPLCONFIGDIR=str(tmp_path / "mpl"))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"bedspace demo: error: --figure {figure}: matplotlib cannot write .nope figures")


def test_every_module_of_pyranges_that_configures_logging_is_imported_under_the_guard(tmp_path):
    """pyranges1 modules calling ``logging.basicConfig`` that ``import pyranges1`` leaves for later are listed."""
    code = """
    import importlib.util, json
    from bedspace._quiet import pyranges

    pyranges()
    root = Path(importlib.util.find_spec("pyranges1").origin).parent
    configuring = sorted(
        ".".join(("pyranges1", *path.relative_to(root).with_suffix("").parts))
        for path in root.rglob("*.py")
        if "logging.basicConfig" in path.read_text()
    )
    (OUT / "modules.json").write_text(json.dumps({"configuring": configuring, "loaded": sorted(sys.modules)}))
    """
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert modules["configuring"], "pyranges1 no longer calls logging.basicConfig: bedspace._quiet.pyranges can go"
    assert set(modules["configuring"]) <= set(modules["loaded"])


def _guarded(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def test_pyranges_imported_only_through_the_guard():
    """Outside ``_quiet.py``, bedspace imports pyranges1 only for type checkers."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_quiet.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        for_checkers = {
            id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _guarded(node) for inner in node.body
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "pyranges1" for name in names) and id(node) not in for_checkers:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
        if 'import_module("pyranges1' in path.read_text() or '__import__("pyranges1' in path.read_text():
            found.append(str(path.relative_to(PACKAGE.parent)))
    assert not found, f"import pyranges1 through bedspace._quiet.pyranges(), not directly: {found}"
