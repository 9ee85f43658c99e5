#!/usr/bin/env bash
# Runs inside the new env (Snakemake post-deploy script).
set -euo pipefail
# basicsr builds against the env's torch; without this pip pulls a second torch.
pip install --no-build-isolation basicsr==1.4.2
pip install realesrgan==0.3.0
