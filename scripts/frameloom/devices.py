"""Which torch device a model adapter runs on, from the config's ``device`` setting.

Shared by every model adapter so "auto" means the same everywhere, and asking
for CUDA on a machine without it fails loudly instead of silently running a
model on the CPU. torch is imported on call: the classical pipeline never needs it.
"""

from __future__ import annotations

import os

# What to do when CUDA is unusable, in the line that says so.
CUDA_ADVICE = ("set device to 'auto' or 'cpu', or install a torch build for your driver "
               "(docs/models.md: \"A GPU for the model steps\")")


def cuda_problem() -> str | None:
    """Why torch cannot use a GPU here, in one line naming the build, driver or device
    problem; None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    build = f"torch {torch.__version__} (built for CUDA {torch.version.cuda})"
    try:
        torch.cuda.init()
    except Exception as error:  # noqa: BLE001 - torch words the driver problem itself
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"{build} cannot use the GPU: {first}"
    if torch.cuda.device_count() == 0:
        return f"{build} sees no CUDA device (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
    return None


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cpu`` and ``cuda[:N]`` are checked and passed on.
    On CUDA, TF32 matmuls and convolutions are allowed (upstream SAM2 and Real-ESRGAN run so)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        problem = cuda_problem()
        if problem is not None:
            raise RuntimeError(f"device {device!r} requested but {problem}; {CUDA_ADVICE}")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise RuntimeError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


def keeps_workstation_gpu_cap(submits_to_nodes: bool, command_line: list[str]) -> bool:
    """Whether the global ``gpu`` resource limit stays in force for this run.

    profiles/default sets ``resources: gpu: 1`` so two jobs never share a
    workstation's card, and Snakemake loads it with ``--profile profiles/slurm``
    too. On a cluster (Snakemake submits to nodes) SLURM hands out the cards
    and that cap would only send GPU jobs one at a time; there it is dropped,
    unless the command line gave ``--resources`` (the user's own cap).
    """
    given = any(arg in ("--resources", "--res") or arg.startswith(("--resources=", "--res="))
                for arg in command_line)
    return not submits_to_nodes or given


def cpu_because(requested: str, resolved: str) -> str | None:
    """Why a model asked to run on ``requested`` ("auto") runs on the CPU: the line
    ``cuda_problem`` gives, so a GPU lost to a driver is never lost silently."""
    if requested == "auto" and resolved == "cpu":
        return cuda_problem()
    return None


def inference_dtype(device: str):
    """(torch dtype, its name) a model runs in on ``device``: bf16 on CUDA cards that
    have it, fp16 on other cards, fp32 on the CPU (most CPUs have no fast half-precision matmul)."""
    import torch

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    return dtype, str(dtype).removeprefix("torch.")
