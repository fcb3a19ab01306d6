#!/usr/bin/env bash
# Open the workbook in JupyterLab with live widgets (the ipywidgets extension is part of the install).
# Set-up first (creates .venv on first use); extra arguments go to JupyterLab (e.g. --port 8890).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -eq 0 ]; then
  set -- --allow-root "$@"  # containers often run as root; JupyterLab refuses root without it
fi
exec .venv/bin/python -m jupyterlab --ServerApp.root_dir=notebooks "$@"
