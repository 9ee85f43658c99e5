"""Tiny stand-ins for model weights, in the real on-disk formats, for tests and benchmarks.

No SAM2 or LaMa weights can be downloaded here, so these write a random-weight
SAM2 checkpoint (``{"model": state_dict}``, what ``build_sam2`` loads) and a
TorchScript module with LaMa's call signature (what simple-lama loads).
"""

from __future__ import annotations

from pathlib import Path

import torch


class MeanFill(torch.nn.Module):
    """LaMa's call signature; fills the hole with the mean colour of the known pixels."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hole = mask.to(image.dtype)
        known = 1.0 - hole
        mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
        return image * known + mean * hole


def save_random_sam2(path: Path, model_name: str = "sam2_hiera_tiny", seed: int = 0) -> Path:
    from sam2.build_sam import build_sam2

    from frameloom.sam2_backend import SAM2_CONFIGS

    torch.manual_seed(seed)
    model = build_sam2(SAM2_CONFIGS[model_name], ckpt_path=None, device="cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def save_mean_fill_lama(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(MeanFill()), str(path))
    return path
