#!/usr/bin/env bash
# Set up everything the test suite needs in .venv, then run it (extra arguments go to pytest).
# Needs Python >= 3.12 as `python3` (or set PYTHON) and, for the exactness tests, bedtools (installed here with
# apt-get when missing and allowed). Real data: $BEDSPACE_DATA_DIR, else downloaded once into the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    echo "bedspace needs Python >= 3.12; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.12." >&2
    exit 1
fi
if ! command -v bedtools >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bedtools >/dev/null
    elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bedtools >/dev/null
    else
        echo "the tests compare with bedtools: install it (apt-get install bedtools, conda install -c bioconda bedtools or brew install bedtools)" >&2
        exit 1
    fi
fi

"$PYTHON" -m venv .venv
# uv (from PyPI) installs the stack in seconds where pip takes minutes; compiled to bytecode once here, as pip
# does, because the tests start hundreds of Python processes (and some machines set PYTHONDONTWRITEBYTECODE)
.venv/bin/python -m pip install -q uv
.venv/bin/uv pip install -q -p .venv --compile-bytecode -e ".[test]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# the test suite (tests/test_tutorials.py executes the tutorials and compares with their stored outputs);
# arguments, if any, replace the default path
if [ $# -eq 0 ]; then set -- tests; fi
MPLBACKEND=agg .venv/bin/python -m pytest --durations=15 "$@"
