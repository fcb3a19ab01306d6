#!/usr/bin/env bash
# Execute every notebook headless with papermill into build/notebooks/ (never in place), check that
# every plotting cell of every executed notebook shows its figure, and render them into the static
# HTML book build/book/ (open build/book/index.html; nothing is fetched from the network).
# The set-up installs the Python package only: no browser.
# PRESET=teach (default: auto, i.e. smoke when CI is set) chooses the preset of every notebook.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
out=build/notebooks
mkdir -p "$out"
rm -f "$out"/*.ipynb  # a renamed or removed notebook must not linger in the book
preset=${PRESET:-auto}
shopt -s nullglob
for nb in notebooks/[0-9]*.ipynb; do
  name=$(basename "$nb")
  echo "running $name (PRESET=$preset)"
  .venv/bin/python -m papermill "$nb" "$out/$name" -k python3 --cwd notebooks -p PRESET "$preset" --log-level WARNING --no-progress-bar
done
echo "Executed notebooks are in $(pwd)/$out"
.venv/bin/python -m redcore_lite.book check "$out"
.venv/bin/python -m redcore_lite.book build "$out" build/book
echo "The book: $(pwd)/build/book/index.html"
