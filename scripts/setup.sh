#!/usr/bin/env bash
# Create .venv with napari-vos and its test extras.
# torch comes first and alone: pip takes its CPU-only build (0.7 GB) where one lies in pip's
# find-links (as on this project's CI machines), else PyPI's default build (with CUDA, ~6 GB).
# Set NAPARI_VOS_TORCH to ask for another (e.g. "torch>=2.4" on a GPU workstation).
# napari-vos needs no torchvision (see src/napari_vos/nn/resnet.py); it is the optional extra
# [imagenet] for training from ImageNet backbones. --no-cache-dir keeps the disk footprint to what is
# installed (the wheels are not kept a second time in pip's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# pip unpacks into TMPDIR: keep that on the project's own disk (a small /tmp must not fail the install)
mkdir -p .pip-tmp
export TMPDIR="$PWD/.pip-tmp"
trap 'rm -rf .pip-tmp' EXIT
[ -x .venv/bin/python ] || "$PY" -m venv .venv

# pip install, without the one-line-per-package warnings about index folders a machine lacks
# (they buried CI's one real error); on failure, say how much disk was left
pip_install() {
  local rc=0
  .venv/bin/python -m pip install -q --no-cache-dir "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } || rc=$?
  if [ "$rc" != 0 ]; then echo "pip install $* failed (exit $rc); free disk:" >&2; df -h . "$TMPDIR" >&2; fi
  return "$rc"
}
pip_install --upgrade pip
pip_install "${NAPARI_VOS_TORCH:-torch==2.13.0}"
pip_install -e ".[test]"
