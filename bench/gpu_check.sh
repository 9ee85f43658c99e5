#!/usr/bin/env bash
# The CUDA path of every model adapter, in one command, on a GPU machine: the driver and what
# torch sees, then bench/model_steps.py on CUDA (device, precision, load and frame times, peak
# GPU memory, the pipeline's frames per hour), then the tests that need a GPU.
#   bash bench/gpu_check.sh            (after: bash scripts/install.sh --test --models)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PYTHON" - <<'PY'
import torch
from frameloom.devices import cuda_problem
problem = cuda_problem()
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}):", problem or
      f"{torch.cuda.get_device_name()}, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
raise SystemExit(1 if problem else 0)
PY
"$PYTHON" bench/model_steps.py --device cuda --frames 3 --size 640 360
"$PYTHON" -m pytest -q -m "not slow" -k cuda tests/
