#!/usr/bin/env bash
# Install (scripts/setup.sh) and run FRTM on the built-in natural-looking sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/napari-vos demo --method frtm --device auto "$@"
