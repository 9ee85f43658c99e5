"""Which torch device a model adapter runs on, from the config's ``device`` setting.

Shared by every model adapter so "auto" means the same everywhere, and asking
for CUDA on a machine without it fails loudly instead of silently running a
model on the CPU. torch is imported on call: the classical pipeline never needs it.
"""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cpu`` and ``cuda[:N]`` are checked and passed on."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} requested but torch sees no CUDA device "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                "set processing.device to 'auto' or 'cpu'"
            )
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


def inference_dtype(device: str):
    """(torch dtype, its name) a model runs in on ``device``: bf16 on CUDA cards that
    have it, fp16 on other cards, fp32 on the CPU (most CPUs have no fast half-precision matmul)."""
    import torch

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    return dtype, str(dtype).removeprefix("torch.")
