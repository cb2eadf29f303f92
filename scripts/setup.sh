#!/usr/bin/env bash
# Create .venv with napari-vos and its test extras. torch and torchvision are installed together
# as a matched pair from PyPI first (a lone torchvision would not match a preinstalled torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.2"
.venv/bin/python -m pip install -q -e ".[test]"
