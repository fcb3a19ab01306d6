#!/usr/bin/env bash
# Debian's chromium for the browser tests (tests/test_browser.py: JupyterLab and the HTML book).
# Only the test command needs it: scripts/test.sh runs this, scripts/workbook.sh does not. Installs
# where it can (root with apt-get, as in CI); elsewhere the browser tests are skipped and say why.
# Never a downloaded browser.
set -euo pipefail
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "setup-browser: installing chromium with apt-get (for tests/test_browser.py)"
  log=$(mktemp)
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "setup-browser: apt-get could not install chromium; the browser tests will be skipped" >&2
  fi
  rm -f "$log"
fi
