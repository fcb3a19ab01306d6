#!/usr/bin/env bash
# Create .venv (once) and install redcore_lite with every extra, CPU torch pinned.
# Idempotent: re-installs only when pyproject.toml or constraints-cpu.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python only: the browser for the browser tests is installed by scripts/setup-browser.sh, which
# only scripts/test.sh runs (the workbook needs no browser).
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=$(cat pyproject.toml constraints-cpu.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.install-stamp 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints-cpu.txt -e ".[notebooks,data,dev]"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$stamp" > .venv/.install-stamp
fi
