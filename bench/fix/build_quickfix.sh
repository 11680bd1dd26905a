#!/usr/bin/env bash
# Build QuickFIX's Python binding (PyPI `quickfix`, C++ compiled from source) into its own
# virtualenv, so the interop test and the benchmark can import it without touching keel's
# environment. Takes ~10-30 min on a loaded 2-core machine. Never run by ./scripts/test.
#
#   bench/fix/build_quickfix.sh [VENV_DIR]      (default: bench/fix/.venv-quickfix)
#
# The venv inherits the system site-packages (numpy, pytest, hypothesis, keel's deps), so
# `VENV/bin/python -m pytest -m slow tests/venues/fix/test_quickfix_interop.py` runs keel
# against the real engine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/.venv-quickfix}"
version="${QUICKFIX_VERSION:-1.16.0}"
python3 -m venv --system-site-packages "$venv"
# Compile with one job at a time at low priority: the machine is shared.
export MAKEFLAGS="-j1"
export CFLAGS="${CFLAGS:--O2}"
export CXXFLAGS="${CXXFLAGS:--O2 -std=c++17 -Wno-deprecated-declarations}"
time nice -n 10 "$venv/bin/pip" install --no-binary quickfix "quickfix==$version"
"$venv/bin/python" -c "import quickfix; print('quickfix', quickfix.__file__)"
