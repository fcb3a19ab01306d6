#!/usr/bin/env bash
# Execute every notebook headless with papermill into build/notebooks/ (never in place), check that
# every plotting cell of every executed notebook shows its figure, and render them into the static
# HTML book build/book/ (open build/book/index.html; nothing is fetched from the network).
# The set-up installs the Python package only: no browser.
# PRESET=teach (default: auto, i.e. smoke when CI is set) chooses the preset of every notebook.
# Another machine without having one (every check must hold; see README "True on every machine"):
#   ATEN_CPU_CAPABILITY=default or MKL_CBWR=COMPATIBLE (another floating-point path),
#   REDCORE_THREADS=2 (another thread count), REDCORE_SEED_BASE=1000 (other seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
out=build/notebooks
.venv/bin/python -m redcore_lite.book run notebooks "$out" --preset "${PRESET:-auto}"
echo "Executed notebooks are in $(pwd)/$out"
.venv/bin/python -m redcore_lite.book check "$out"
.venv/bin/python -m redcore_lite.book build "$out" build/book
echo "The book: $(pwd)/build/book/index.html"
