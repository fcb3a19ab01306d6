#!/usr/bin/env bash
# The whole test suite: set-up (Python, then Debian's chromium for the browser tests), unit tests,
# every notebook with the teach preset on another floating-point path and seed base than the
# committed results were computed with (so the teach-only checks run on every submission, as on a
# user's machine), then every notebook under strict nbval (the preset picked by CI, else teach).
# Arguments go to the unit tests' pytest. REDCORE_TEACH_CHECK=0 skips the teach run (a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-browser.sh
export MPLBACKEND=Agg
.venv/bin/python -m ruff check redcore_lite tests benchmarks scripts  # lint (rules in pyproject.toml)
.venv/bin/python -m mypy redcore_lite  # types
.venv/bin/python scripts/structure.py  # layers: no import cycle, no upward import (docs/structure.md)
.venv/bin/python -m pytest tests/ "$@"
if [ "${REDCORE_TEACH_CHECK:-1}" != "0" ]; then
  # "Another machine": torch's non-vectorised CPU kernels and seeds offset by 1000. Checks that
  # compare with committed numbers must hold here as on any CPU (README: True on every machine).
  ATEN_CPU_CAPABILITY=default REDCORE_SEED_BASE=1000 \
    .venv/bin/python -m redcore_lite.book run notebooks build/teach-check --preset teach
  .venv/bin/python -m redcore_lite.book check build/teach-check
fi
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
