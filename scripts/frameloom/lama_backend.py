"""LaMa inpainting behind the ``Inpainter`` interface of ``frameloom.inpainting``.

The TorchScript model (``big-lama.pt``) is loaded through simple-lama-inpainting's
own loader, pointed at our file through its ``LAMA_MODEL`` environment variable,
so the package never falls back to downloading its default weights. Only pixels
inside the dilated mask change; everything else stays byte-identical.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import torch
from simple_lama_inpainting import SimpleLama

from .devices import resolve_device
from .inpainting import grown_hole

# LaMa's memory grows with the pixel count; larger working regions are filled at
# this longest side and the fill is upscaled (only the hole is pasted back).
MAX_WORKING_SIDE = 1024
# Known pixels kept around the hole as context, at least this many on each side...
MIN_CONTEXT_PX = 128
# ...or this fraction of the hole's larger bounding-box side, whichever is more.
CONTEXT_FRACTION = 0.5
# Width of the ramp, inside the hole, over which the fill blends into the frame.
FEATHER_PX = 2

# simple-lama reads its model path from the process environment, which every
# thread shares: one loader at a time sets it and puts the old value back.
_LAMA_ENV_LOCK = threading.Lock()
_LAMA_ENV_VAR = "LAMA_MODEL"


def _load_simple_lama(model_path: Path, device: str) -> SimpleLama:
    with _LAMA_ENV_LOCK:
        previous = os.environ.get(_LAMA_ENV_VAR)
        os.environ[_LAMA_ENV_VAR] = str(model_path)
        try:
            return SimpleLama(device=torch.device(device))
        finally:
            if previous is None:
                del os.environ[_LAMA_ENV_VAR]
            else:
                os.environ[_LAMA_ENV_VAR] = previous


class LamaInpainter:
    name = "lama"

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu"):
        """``device``: "auto", "cpu", "cuda" or "cuda:N", as ``frameloom.devices.resolve_device`` takes it."""
        path = Path(model_path)
        # An empty or missing LAMA_MODEL makes simple-lama download its default
        # weights, so the file must exist before its loader ever runs.
        if not path.is_file():
            raise FileNotFoundError(f"LaMa TorchScript model not found: {path}")
        self.model_path = path
        self.device = resolve_device(device)
        self.precision = "float32"  # the TorchScript export is traced in fp32
        self._lama = _load_simple_lama(path, self.device)

    def inpaint(self, image_bgr: np.ndarray, mask: np.ndarray, dilation: int = 5) -> np.ndarray:
        """Fill ``mask`` (bool or uint8, non-zero = remove), grown by ``dilation`` px first."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image_bgr.shape}")
        hole = grown_hole(image_bgr, mask, dilation)
        result = image_bgr.copy()
        if not hole.any():
            return result

        y0, y1, x0, x1 = _context_window(hole)
        crop = image_bgr[y0:y1, x0:x1]
        crop_hole = hole[y0:y1, x0:x1]
        filled = self._fill(crop, crop_hole)

        # Blend only inside the hole: outside it the weight is 0 and the frame is untouched.
        inside_distance = cv2.distanceTransform(crop_hole, cv2.DIST_L2, 3)
        weight = np.clip(inside_distance / FEATHER_PX, 0.0, 1.0)[..., None]
        blended = crop.astype(np.float32) * (1.0 - weight) + filled.astype(np.float32) * weight
        inside = crop_hole.astype(bool)
        result[y0:y1, x0:x1][inside] = np.clip(blended[inside] + 0.5, 0, 255).astype(np.uint8)
        return result

    def _fill(self, crop_bgr: np.ndarray, crop_hole: np.ndarray) -> np.ndarray:
        """LaMa's fill of the whole crop, at the crop's size."""
        height, width = crop_hole.shape
        scale = min(1.0, MAX_WORKING_SIDE / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(crop_bgr, size, interpolation=cv2.INTER_AREA)
            # Any partly covered low-res pixel is unknown, so no character colour leaks in.
            work_hole = cv2.resize(crop_hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        else:
            work, work_hole = crop_bgr, crop_hole > 0
        work_height, work_width = work_hole.shape
        rgb = cv2.cvtColor(work, cv2.COLOR_BGR2RGB)
        painted = np.asarray(self._lama(rgb, work_hole.astype(np.uint8) * 255))
        # simple-lama pads to a multiple of 8; the padding is not part of the frame.
        painted = cv2.cvtColor(np.ascontiguousarray(painted[:work_height, :work_width]), cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            painted = cv2.resize(painted, (width, height), interpolation=cv2.INTER_CUBIC)
        return painted


def _context_window(hole: np.ndarray) -> tuple[int, int, int, int]:
    """Rows and columns (y0, y1, x0, x1) of the hole's box grown by its context margin."""
    height, width = hole.shape
    x, y, w, h = cv2.boundingRect(hole)
    margin = max(MIN_CONTEXT_PX, round(CONTEXT_FRACTION * max(w, h)))
    return max(0, y - margin), min(height, y + h + margin), max(0, x - margin), min(width, x + w + margin)
