"""README's first command from a fresh clone: set up, then ``bedspace demo`` cold and warm; uv beside pip.

    python benchmarks/cold_start.py            # uv (as README.md says) and pip, side by side
    python benchmarks/cold_start.py --uv-only  # uv alone (pip takes a minute and a half more)

Each installer gets a fresh clone of this repository's HEAD in a temporary folder and nothing cached: a new venv,
an empty uv cache (pip: ``--no-cache-dir``), an empty bedspace cache (the bundled slice is extracted again), an
empty matplotlib configuration (its font cache is built again) and no numba cache (the clone has none). Steps, each
timed: the venv, bringing uv into it (uv only), installing bedspace, the first demo (cold: numba compiles) and a
second demo (warm); "cold start" is their sum up to the first demo. Downloads come from the package index
configured on the machine, so the install times depend on its network: compare the two installers measured here
in one run, not across machines. The last line says whether the two demos printed the same text.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: README.md's first command, step by step: (step, command) — the demo runs twice.
STEPS = {
    "uv": [
        ("venv", [sys.executable, "-m", "venv", ".venv"]),
        ("bring uv", [".venv/bin/pip", "install", "-q", "uv"]),
        ("install bedspace", [".venv/bin/uv", "pip", "install", "-q", "-p", ".venv", "-e", "."]),
    ],
    "pip": [
        ("venv", [sys.executable, "-m", "venv", ".venv"]),
        ("install bedspace", [".venv/bin/pip", "install", "-q", "--no-cache-dir", "-e", "."]),
    ],
}
DEMO = [".venv/bin/bedspace", "demo"]


def run_steps(installer: str) -> tuple[dict[str, float], bool]:
    """Times of each step for one installer, from a fresh clone; and whether the two demos printed the same."""
    with tempfile.TemporaryDirectory(prefix=f"bedspace-cold-{installer}-") as folder:
        folder = Path(folder)
        clone = folder / "bedspace"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = os.environ | {
            "UV_CACHE_DIR": str(folder / "uv-cache"),
            "BEDSPACE_CACHE_DIR": str(folder / "bedspace-cache"),
            "MPLCONFIGDIR": str(folder / "matplotlib"),
        }
        env.pop("NUMBA_CACHE_DIR", None)  # numba's cache beside the clone's code: empty
        seconds, outputs = {}, []
        steps = [*STEPS[installer], ("first demo (cold)", DEMO), ("second demo (warm)", DEMO)]
        for step, command in steps:
            t0 = time.perf_counter()
            result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
            seconds[step] = time.perf_counter() - t0
            if result.returncode != 0:
                sys.exit(f"{installer}: {step} failed:\n{result.stderr[-2000:]}")
            if command is DEMO:
                outputs.append(result.stdout)
        return seconds, outputs[0] == outputs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv-only", action="store_true", help="measure uv alone")
    args = parser.parse_args()
    installers = ["uv"] if args.uv_only else ["uv", "pip"]
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} cores, load {load:.1f} at the start; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
    rows = {}
    for installer in installers:
        seconds, same = run_steps(installer)
        rows[installer] = seconds
        cold = sum(t for step, t in seconds.items() if step != "second demo (warm)")
        print(f"\n=== {installer}: fresh clone, nothing cached")
        for step, t in seconds.items():
            print(f"  {step:<20} {t:6.1f} s")
        print(f"  {'cold start':<20} {cold:6.1f} s   (target 60 s); warm demo {seconds['second demo (warm)']:.1f} s "
              f"(target 20 s); same output twice: {same}")  # fmt: skip
    if len(rows) == 2:
        uv, pip = rows["uv"]["install bedspace"] + rows["uv"]["bring uv"], rows["pip"]["install bedspace"]
        print(f"\ninstall with uv {uv:.1f} s (bringing uv included), with pip {pip:.1f} s: {pip / uv:.1f}× faster")


if __name__ == "__main__":
    main()
