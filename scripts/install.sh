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
# Every install is held to constraints.txt: an upstream release changes nothing here.
pip() { .venv/bin/pip --disable-pip-version-check --quiet "$1" -c constraints.txt "${@:2}"; }
pip install -e "$target"
# The face detector every install carries (frameloom.mtcnn reads its weight file);
# its requirements (keras, for code frameloom does not import) stay out.
pip install --no-deps mtcnn
# pymatting compiles its numba kernels on first import (~2 min on 2 cores) and
# caches them: pay it here once, not in the first curation jobs.
.venv/bin/python -c "import pymatting"
if [ "$models" = 1 ]; then
  # A matched pair from PyPI (CUDA builds; they also run on CPU).
  pip install torch torchvision
  # sam2 is an sdist: build it without CUDA kernels, against the torch above.
  SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2
  # simple-lama-inpainting pins numpy<2 and pillow<10, which would break snakemake;
  # its code works on the versions installed here.
  pip install --no-deps simple-lama-inpainting
  # basicsr (under realesrgan) must build against the torch above, or pip pulls a second one.
  pip install --no-build-isolation basicsr
  pip install realesrgan facexlib gfpgan lpips
  # Only CodeFormer's architecture is used; its requirements would pull downloaders.
  pip install --no-deps codeformer-pip
  # Qwen2-VL / Qwen2.5-VL captions.
  pip install transformers
fi
