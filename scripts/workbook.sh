#!/usr/bin/env bash
# Execute every notebook headless with papermill into build/notebooks/ (never in place).
# PRESET=teach (default: auto, i.e. smoke when CI is set) chooses the preset of every notebook.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
out=build/notebooks
mkdir -p "$out"
preset=${PRESET:-auto}
shopt -s nullglob
for nb in notebooks/[0-9]*.ipynb; do
  name=$(basename "$nb")
  echo "running $name (PRESET=$preset)"
  .venv/bin/python -m papermill "$nb" "$out/$name" -k python3 --cwd notebooks -p PRESET "$preset" --log-level WARNING --no-progress-bar
done
echo "Executed notebooks are in $(pwd)/$out"
