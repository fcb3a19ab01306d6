#!/usr/bin/env bash
# Create .venv (once) and install redcore_lite with every extra, CPU torch pinned.
# Idempotent: re-installs only when pyproject.toml or constraints-cpu.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test (tests/test_browser.py) drives Debian's chromium. Install it where we can (root
# with apt-get, as in CI); elsewhere that test is skipped and says why. Never a downloaded browser.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing chromium with apt-get (for tests/test_browser.py)"
  log=$(mktemp)
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "setup: apt-get could not install chromium; the browser test will be skipped" >&2
  fi
  rm -f "$log"
fi
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
