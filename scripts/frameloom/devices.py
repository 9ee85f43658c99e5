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
