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
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --no-cache-dir)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "${NAPARI_VOS_TORCH:-torch==2.13.0}"
"${PIP[@]}" -e ".[test]"
