#!/usr/bin/env bash
# The wheels tools/gpu_check.sh installs on the device machine, whose Python 3.12 image has no wandb and no
# network: wandb and what it needs beyond that image, for CPython 3.12 on x86-64 Linux, into .wheels/ (ignored by
# git; name it in the device tool's carry). Run here, where pip reaches the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(grep -E '^wandb' constraints.txt | head -1 | sed -E 's/^wandb==//')
python -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .wheels "wandb==${version:?constraints.txt pins no wandb}"
du -sh .wheels
