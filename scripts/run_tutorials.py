"""Execute the tutorials top to bottom and store their outputs in the notebooks.

    .venv/bin/python scripts/run_tutorials.py            # every notebook in tutorials/
    .venv/bin/python scripts/run_tutorials.py 02         # the notebooks whose name contains 02

Each notebook runs in a fresh kernel with the environment of the test run (tests/test_tutorials.py, which
re-executes them and compares with what is stored here): figures drawn inline as PNG, progress bars off (tqdm's
own ``TQDM_DISABLE``), temporary files in a folder removed afterwards. The outputs are written back with clean
metadata: execution counts 1..n, no timestamps, no widget state. tqdm's notebook bars ignore ``TQDM_DISABLE``
(``tqdm.notebook`` passes ``disable=False`` itself): their outputs, a widget whose state is not stored, are
dropped. Real data come from ``$BEDSPACE_DATA_DIR`` (or a download, once). ``$BEDSPACE_STARSPACE`` is left out of
the kernel's environment, so the stored outputs are those of a machine without the StarSpace binary (as CI).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
TIMEOUT = 900  # seconds per cell
#: Set in the kernel: figures as embedded PNG (GitHub and the docs show them), no progress bars.
KERNEL_ENV = {
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "TQDM_DISABLE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # debugpy's note about frozen modules
}
#: Left out of the kernel's environment: the stored outputs must not depend on them.
KERNEL_ENV_DROPPED = ("BEDSPACE_STARSPACE", "PYTHONWARNINGS")
WIDGET = "application/vnd.jupyter.widget-view+json"


def notebooks(patterns: list[str] | None = None) -> list[Path]:
    """The tutorials, in order; with patterns, those whose file name contains one of them."""
    paths = sorted(TUTORIALS.glob("*.ipynb"))
    if patterns:
        paths = [p for p in paths if any(pattern in p.name for pattern in patterns)]
    return paths


def _kernel_environment(tmp: str, **extra: str) -> dict[str, str]:
    """The kernel's environment: this process's, given to the kernel alone (several notebooks can run at once)."""
    env = {name: value for name, value in os.environ.items() if name not in KERNEL_ENV_DROPPED}
    return env | KERNEL_ENV | {"TMPDIR": tmp} | extra


def execute(path: Path, **env: str) -> nbformat.NotebookNode:
    """The notebook at ``path`` executed top to bottom in a fresh kernel (in its folder); raises on a cell's error.

    ``env`` adds to the kernel's environment (the test passes ``BEDSPACE_STARSPACE`` through it when set).
    """
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="bedspace_tutorial_") as tmp:
        # IPC sockets in the temporary folder: a TCP kernel warns on stderr that it is unencrypted
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(tmp, "kernel"))
        client = NotebookClient(
            nb,
            km=kernel,
            timeout=TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,
            store_widget_state=False,
        )
        # cleanup_kc: shut the kernel down (the client does not own it)
        client.execute(cwd=str(path.parent), env=_kernel_environment(tmp, **env), cleanup_kc=True)
    return clean(nb)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Metadata that does not change from run to run: counts 1..n, no timestamps, no widget state."""
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = [output for output in cell.outputs if WIDGET not in output.get("data", {})]
        for output in cell.outputs:
            if "execution_count" in output:
                output.execution_count = count
            output.get("metadata", {}).pop("execution", None)
    for key in ("widgets", "language_info", "papermill"):
        nb.metadata.pop(key, None)
    return nb


def main(argv: list[str] | None = None) -> int:
    """Run the notebooks named (all by default), write their outputs, print each one's time and any stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="run only the notebooks whose file name contains one of these")
    args = parser.parse_args(argv)
    paths = notebooks(args.patterns)
    if not paths:
        parser.error(f"no notebook in {TUTORIALS} matches {args.patterns}")
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        stderr = [
            (i, output.text)
            for i, cell in enumerate(nb.cells)
            for output in cell.get("outputs", [])
            if output.output_type == "stream" and output.name == "stderr"
        ]
        print(f"{path.relative_to(ROOT)}: {time.perf_counter() - start:.0f} s", flush=True)
        for i, text in stderr:
            print(f"  cell {i} wrote to stderr:\n    " + text.rstrip().replace("\n", "\n    "), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
