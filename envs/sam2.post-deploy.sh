#!/usr/bin/env bash
# Runs inside the new env (Snakemake post-deploy script).
set -euo pipefail
# sam2 is an sdist: build without CUDA kernels and against the env's torch.
SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0
