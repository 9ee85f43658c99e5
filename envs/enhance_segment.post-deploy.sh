#!/usr/bin/env bash
# Runs inside the new env (Snakemake post-deploy script).
set -euo pipefail
# basicsr builds against the env's torch; without this pip pulls a second torch.
pip install --no-build-isolation basicsr==1.4.2
# codeformer-pip: only its architecture is used; its own requirements would pull gdown and more.
pip install --no-deps codeformer-pip==0.0.4
SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0
pip install --no-deps simple-lama-inpainting==0.1.2
