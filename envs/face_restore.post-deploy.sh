#!/usr/bin/env bash
# Runs inside the new env (Snakemake post-deploy script).
set -euo pipefail
# basicsr builds against the env's torch; without this pip pulls a second torch.
pip install --no-build-isolation basicsr==1.4.2
pip install facexlib==0.3.0 gfpgan==1.3.8
# codeformer-pip: only its architecture is used; its own requirements would pull gdown and more.
pip install --no-deps codeformer-pip==0.0.4
