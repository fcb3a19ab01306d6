#!/usr/bin/env bash
# The whole test suite: set-up (Python, then Debian's chromium for the browser tests), unit tests,
# then every notebook under strict nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-browser.sh
export MPLBACKEND=Agg
.venv/bin/python -m ruff check redcore_lite tests benchmarks scripts  # lint (rules in pyproject.toml)
.venv/bin/python -m mypy redcore_lite  # types
.venv/bin/python scripts/structure.py  # layers: no import cycle, no upward import (docs/structure.md)
.venv/bin/python -m pytest tests/ "$@"
# Notebooks: pytest exits 5 when it collects nothing (no notebook yet); that is not a failure.
set +e
.venv/bin/python -m pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "notebooks: no notebook collected"
  rc=0
fi
exit "$rc"
