"""Real-ESRGAN super-resolution for the enhancement stage.

The network is built here for a known model name and its weights are loaded by
the real ``realesrgan.RealESRGANer`` (which reads ``params_ema`` or ``params``
from the checkpoint), once in ``__init__``; every frame then goes through
``RealESRGANer.enhance``: the model's native x4, resized (Lanczos) to
``outscale`` exactly as upstream does. BGRA input keeps its alpha channel
(upscaled by the same network, as upstream's default). Only 8-bit images are
accepted.

basicsr (imported by realesrgan) still imports
``torchvision.transforms.functional_tensor``, removed from torchvision; it is
aliased to ``torchvision.transforms.functional`` before the import.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np

from .devices import resolve_device
from .quiet import silenced_stdout

# Real-ESRGAN's native scale for every model known here.
NATIVE_SCALE = 4
TILE_PAD = 10
# Out of GPU memory: the tile is halved (a whole frame first becomes tiles of this side)
# and the frame retried, down to MIN_TILE.
FIRST_TILE = 512
MIN_TILE = 64

# model name -> (architecture, keyword arguments of its constructor)
MODEL_SPECS: dict[str, tuple[str, dict]] = {
    "RealESRGAN_x4plus_anime_6B": (
        "RRDBNet",
        dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=6, num_grow_ch=32, scale=4),
    ),
    "realesr-animevideov3": (
        "SRVGGNetCompact",
        dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
    ),
}


def _import_realesrgan():
    """(RealESRGANer, RRDBNet, SRVGGNetCompact), with basicsr's stale torchvision import patched."""
    import torchvision
    import torchvision.transforms.functional

    sys.modules.setdefault("torchvision.transforms.functional_tensor", torchvision.transforms.functional)
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from realesrgan import RealESRGANer
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    return RealESRGANer, RRDBNet, SRVGGNetCompact


def _model_stem(model_name: str) -> str:
    """Accepts ``"RealESRGAN_x4plus_anime_6B"`` as well as ``"realesrgan:RealESRGAN_x4plus_anime_6B"``."""
    return model_name.split(":", 1)[1] if model_name.startswith("realesrgan:") else model_name


class RealESRGANUpscaler:
    """Upscales uint8 BGR / BGRA frames by ``outscale`` with a Real-ESRGAN model."""

    def __init__(
        self,
        model_name: str,
        weights_path: str | os.PathLike,
        device: str = "auto",
        tile: int = 256,
        outscale: float = 2.0,
    ):
        """``device``: "auto", "cpu", "cuda" or "cuda:N" (``frameloom.devices.resolve_device``);
        ``tile``: tile side in input pixels (0 = whole frame at once; tiles bound the memory);
        ``outscale``: output size / input size (the x4 output is resized to it)."""
        stem = _model_stem(model_name)
        if stem not in MODEL_SPECS:
            raise ValueError(
                f"unknown Real-ESRGAN model {model_name!r}: expected one of {sorted(MODEL_SPECS)}"
            )
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"Real-ESRGAN weights for {stem!r} not found: {path}")
        if not (isinstance(tile, int) and tile >= 0):
            raise ValueError(f"tile must be an int >= 0 (0 = no tiling), got {tile!r}")
        if not outscale > 0:
            raise ValueError(f"outscale must be > 0, got {outscale!r}")

        import torch

        RealESRGANer, RRDBNet, SRVGGNetCompact = _import_realesrgan()
        arch, kwargs = MODEL_SPECS[stem]
        net = RRDBNet(**kwargs) if arch == "RRDBNet" else SRVGGNetCompact(**kwargs)

        self.model_name = stem
        self.name = f"realesrgan:{stem}"
        self.device = resolve_device(device)
        self.outscale = float(outscale)
        self.half = self.device.startswith("cuda")
        self.precision = "float16" if self.half else "float32"  # upstream's half=True on GPUs
        # RealESRGANer keeps the frame being processed on itself: one frame at a time.
        self._lock = threading.Lock()
        # model_path must be a str: upstream calls .startswith("https://") on it.
        self._upsampler = RealESRGANer(
            scale=NATIVE_SCALE,
            model_path=str(path),
            model=net,
            tile=tile,
            tile_pad=TILE_PAD,
            pre_pad=0,
            half=self.half,
            device=torch.device(self.device),
        )

    def upscale(self, image_bgr: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) BGR or (H, W, 4) BGRA -> same channels at (round-down) H*outscale x W*outscale."""
        image = np.asarray(image_bgr)
        if image.dtype != np.uint8:
            raise ValueError(f"RealESRGANUpscaler takes 8-bit images only, got dtype {image.dtype}")
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected a (H, W, 3) BGR or (H, W, 4) BGRA image, got shape {image.shape}")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"empty image of shape {image.shape}")
        import torch

        # Upstream prints "\tTile i/n" per tile to stdout: swallowed (note: process-wide while it runs).
        with self._lock, torch.inference_mode(), silenced_stdout():
            while True:
                try:
                    output, _mode = self._upsampler.enhance(np.ascontiguousarray(image), outscale=self.outscale)
                    return output
                except torch.OutOfMemoryError:
                    smaller = FIRST_TILE if self.tile == 0 else self.tile // 2
                    if smaller < MIN_TILE:
                        raise
                    # Frames of a film share a size: the smaller tile stays for the rest of the job.
                    self._upsampler.tile_size = smaller
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()

    @property
    def tile(self) -> int:
        """Tile side in input pixels (0: whole frame); halved for the rest of the job on out-of-memory."""
        return self._upsampler.tile_size

    def __repr__(self) -> str:
        return f"RealESRGANUpscaler({self.name!r}, device={self.device!r}, tile={self.tile}, outscale={self.outscale})"
