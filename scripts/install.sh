#!/usr/bin/env bash
# Create .venv and install frameloom into it.
#   --test    pytest and hypothesis
#   --models  the neural backends: torch, SAM2, LaMa, Real-ESRGAN, CodeFormer, Qwen2-VL (several GB)
# The model packages need pip flags pyproject extras cannot carry, hence this script.
set -euo pipefail
cd "$(dirname "$0")/.."

models=0
target="."
for arg in "$@"; do
  case "$arg" in
    --models) models=1 ;;
    --test) target=".[test]" ;;
    *) echo "usage: $0 [--test] [--models]" >&2; exit 2 ;;
  esac
done

python3 -m venv .venv
pip() { .venv/bin/pip --disable-pip-version-check --quiet "$@"; }
pip install -e "$target"
# pymatting compiles its numba kernels on first import (~2 min on 2 cores) and
# caches them: pay it here once, not in the first curation jobs.
.venv/bin/python -c "import pymatting"
if [ "$models" = 1 ]; then
  # A matched pair from PyPI (CUDA builds; they also run on CPU).
  pip install torch==2.15.0 torchvision==0.29.2
  # sam2 is an sdist: build it without CUDA kernels, against the torch above.
  SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0
  # simple-lama-inpainting pins numpy<2 and pillow<10, which would break snakemake;
  # its code works on the versions installed here.
  pip install --no-deps simple-lama-inpainting==0.1.2
  # basicsr (under realesrgan) must build against the torch above, or pip pulls a second one.
  pip install --no-build-isolation basicsr==1.4.2
  pip install realesrgan==0.3.0 facexlib==0.3.0 gfpgan==1.3.8 lpips==0.1.4
  # Only CodeFormer's architecture is used; its requirements would pull downloaders.
  pip install --no-deps codeformer-pip==0.0.4
  # Qwen2-VL / Qwen2.5-VL captions.
  pip install transformers==5.23.0
fi
