#!/usr/bin/env bash
# Open the workbook in JupyterLab with live widgets (the ipywidgets extension is part of the install).
# JupyterLab works on your own copies in build/lab/ (copied from notebooks/ when missing), so the
# committed notebooks never collect outputs. Delete build/lab/NAME.ipynb to get a fresh copy.
# Set-up first (creates .venv on first use); extra arguments go to JupyterLab (e.g. --port 8890).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p build/lab
for nb in notebooks/[0-9]*.ipynb; do
  [ -e "build/lab/$(basename "$nb")" ] || cp "$nb" build/lab/
done
if [ "$(id -u)" -eq 0 ]; then
  set -- --allow-root "$@"  # containers often run as root; JupyterLab refuses root without it
fi
exec .venv/bin/python -m jupyterlab --ServerApp.root_dir=build/lab "$@"
