"""README.md's Python section runs as written and prints only bedspace's words.

On the bundled slice of the same collection (``encode_hg19_chr21_22()`` for ``encode_hg19()``: the same calls,
seconds instead of minutes, offline); every bare expression is displayed as a notebook would, and every figure is
drawn to a file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

RUNNER = r"""
import ast, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
block = open(sys.argv[1]).read()
namespace = {}
for node in ast.parse(block).body:
    if isinstance(node, ast.Expr):
        value = eval(compile(ast.Expression(node.value), "README", "eval"), namespace)
        if value is not None:
            print(repr(value))
    else:
        exec(compile(ast.Module([node], []), "README", "exec"), namespace)
for number in plt.get_fignums():
    plt.figure(number).savefig(f"figure_{number}.png")
print("figures:", len(plt.get_fignums()))
"""

#: What bedspace writes to stderr: progress bars (tqdm redraws them with carriage returns) and nothing else here.
PROGRESS = re.compile(r"^[\w ()]+:\s+\d+%\|")


def python_block() -> str:
    text = README.read_text(encoding="utf-8")
    return re.search(r"## In Python\n\n```python\n(.*?)```", text, re.S).group(1)


def test_readme_python_section_runs_and_is_quiet(tmp_path):
    block = python_block()
    assert "bs.datasets.encode_hg19()" in block
    (tmp_path / "block.py").write_text(block.replace("bs.datasets.encode_hg19()", "bs.datasets.encode_hg19_chr21_22()"))
    env = os.environ | {"MPLCONFIGDIR": str(tmp_path / "mpl")}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, "block.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "figures: 2" in result.stdout  # the calibration and the joint map
    assert all((tmp_path / f"figure_{n}.png").stat().st_size > 10_000 for n in (1, 2))
    assert (tmp_path / "model" / "model.json").exists()
    lines = [line for line in re.split(r"[\r\n]+", result.stderr) if line.strip()]
    foreign = [line for line in lines if not PROGRESS.match(line)]
    assert not foreign, foreign
