#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite under a virtual display.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
if command -v xvfb-run >/dev/null; then
  exec xvfb-run -a .venv/bin/python -m pytest -q
else
  echo "xvfb-run not found: running the tests offscreen" >&2
  QT_QPA_PLATFORM=offscreen exec .venv/bin/python -m pytest -q
fi
