"""Neural face restoration (CodeFormer, or GFPGAN as the alternative) with an identity guard.

Both adapters share ``restore(image_bgr, face_boxes, landmarks)``. A face with
its five landmarks (YuNet's: eyes, nose tip, mouth corners) is aligned as
the networks were trained and as upstream does it (facexlib's
FaceRestoreHelper): a similarity transform onto the 512-px FFHQ five-point
template (least median of squares), restored, warped back through the
inverse transform and pasted with a soft mask (the warped face square,
eroded and blurred by a twentieth of its size). A face without landmarks (a
cascade detector's) is cut out as a square crop with a margin, resized to
512, restored, resized back and pasted with a feathered ellipse that is
exactly zero outside the face box. No parsing-network mask is used (its
weights are not part of any download here); the record of each face says
which way it went.

Identity guard: a restorer trained on photographs can turn a stylised 3D
character into a different (photo-real) face. ``identity_drift`` compares the
face box before and after restoration (structure + colour at 64x64); when it
exceeds ``max_drift`` the original face is kept and the record says why.

Only the network architectures are used (``codeformer-pip``'s
``codeformer.basicsr.archs.codeformer_arch`` and ``gfpgan``'s
``gfpganv1_clean_arch``); checkpoints are the official ``{'params_ema': state_dict}``
files, loaded strictly. Nothing is downloaded. torch is imported on first use:
the classical pipeline never needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .devices import resolve_device

NET_SIZE = 512
# Square crop side = longest face-box side * (1 + 2 * CROP_MARGIN).
CROP_MARGIN = 0.25
# The blend ellipse fills this share of the face box; the feather (Gaussian
# sigma, share of the box's shorter side) fades it to ~0 before the box edge.
MASK_ELLIPSE_SCALE = 0.92
MASK_FEATHER_FRACTION = 0.08
DEFAULT_MAX_DRIFT = 0.35
DEFAULT_FIDELITY = 0.7
DEFAULT_BATCH_SIZE = 8  # faces per forward pass (processing.batch_size)
DRIFT_SIZE = 64  # identity_drift compares both crops at this size
# Mean colour difference (Lab units) at which the colour similarity is 1/e.
DRIFT_COLOUR_SCALE = 30.0
MIN_FACE_SIDE = 8  # smaller boxes are skipped: nothing to restore
# FFHQ's five-point template at 512 px (in image coordinates: left eye, right eye, nose tip,
# left and right mouth corner), which CodeFormer's and GFPGAN's training faces were aligned to
# (facexlib.utils.face_restoration_helper).
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], np.float32)
ALIGN_BORDER_BGR = (135, 133, 132)  # upstream's grey beyond the frame's edge in an aligned crop
# The face inside an aligned crop (x, y, w, h): the template's landmarks with a margin.
ALIGNED_FACE_BOX = (150, 180, 212, 240)
PASTE_EDGE_DIVISOR = 20  # the soft mask's erosion and blur: sqrt(face area) / 20, as upstream
FFHQ_ALIGNMENT = "ffhq 5-point"  # how a face record says it was prepared
SQUARE_CROP = "square crop (no landmarks)"


class FaceRestoreError(RuntimeError):
    """Weights missing or not matching the architecture."""


def _patch_torchvision() -> None:
    """basicsr/gfpgan import ``torchvision.transforms.functional_tensor``, removed in torchvision 0.17+."""
    import torchvision.transforms.functional as tvf

    sys.modules.setdefault("torchvision.transforms.functional_tensor", tvf)


def _load_params(model, weights_path: Path, name: str) -> None:
    import torch

    if not weights_path.is_file():
        raise FileNotFoundError(f"{name} weights not found: {weights_path}")
    try:
        checkpoint = torch.load(str(weights_path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, ...
        raise FaceRestoreError(f"cannot read {name} weights {weights_path}: {exc}") from exc
    if not isinstance(checkpoint, dict) or "params_ema" not in checkpoint:
        keys = sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise FaceRestoreError(f"{name} weights {weights_path} hold no 'params_ema' state dict (found {keys})")
    state = checkpoint["params_ema"]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong_shape:
        raise FaceRestoreError(
            f"{name} weights {weights_path} do not match the architecture: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong_shape)} with wrong shape (e.g. {wrong_shape[:3]})"
        )
    model.load_state_dict(state, strict=True)


def identity_drift(before_crop: np.ndarray, after_crop: np.ndarray) -> float:
    """0 (same face) .. 1 (unrelated): 1 - structure similarity * colour similarity.

    Both BGR crops are resized to 64x64. Structure: mean local SSIM of the
    luminance (7x7 Gaussian window, sigma 1.5), clipped to 0..1. Colour:
    exp(-mean Lab distance / DRIFT_COLOUR_SCALE). Identical crops give 0.
    """
    size = (DRIFT_SIZE, DRIFT_SIZE)
    a = cv2.resize(before_crop, size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(after_crop, size, interpolation=cv2.INTER_AREA)
    lab_a = cv2.cvtColor(a, cv2.COLOR_BGR2LAB).astype(np.float64)
    lab_b = cv2.cvtColor(b, cv2.COLOR_BGR2LAB).astype(np.float64)
    # OpenCV's 8-bit Lab: L scaled to 0..255, a/b offset by 128.
    lab_a[..., 0] *= 100.0 / 255.0
    lab_b[..., 0] *= 100.0 / 255.0
    colour_sim = float(np.exp(-np.linalg.norm(lab_a - lab_b, axis=-1).mean() / DRIFT_COLOUR_SCALE))

    x, y = lab_a[..., 0], lab_b[..., 0]
    c1, c2 = (0.01 * 100) ** 2, (0.03 * 100) ** 2

    def blur(img):
        return cv2.GaussianBlur(img, (7, 7), 1.5)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    structure = float(np.clip(ssim_map.mean(), 0.0, 1.0))
    return float(np.clip(1.0 - structure * colour_sim, 0.0, 1.0))


def _blend_mask(height: int, width: int, box_in_region: tuple[int, int, int, int]) -> np.ndarray:
    """Float mask (H, W) in 0..1: a feathered ellipse inside the face box, exactly 0 outside it."""
    bx, by, bw, bh = box_in_region
    mask = np.zeros((height, width), np.float32)
    center = (bx + bw / 2.0, by + bh / 2.0)
    feather = max(1.0, MASK_FEATHER_FRACTION * min(bw, bh))
    # Shrink the ellipse by ~2 sigma so the blur has faded out at the box edge.
    axes = (
        max(1.0, bw / 2.0 * MASK_ELLIPSE_SCALE - 2 * feather),
        max(1.0, bh / 2.0 * MASK_ELLIPSE_SCALE - 2 * feather),
    )
    shift = 4  # sub-pixel precision for cv2.ellipse
    cv2.ellipse(
        mask,
        (round(center[0] * (1 << shift)), round(center[1] * (1 << shift))),
        (round(axes[0] * (1 << shift)), round(axes[1] * (1 << shift))),
        0, 0, 360, 1.0, -1, cv2.LINE_AA, shift,
    )
    mask = cv2.GaussianBlur(mask, (0, 0), feather)
    outside = np.ones_like(mask, bool)
    outside[by : by + bh, bx : bx + bw] = False
    mask[outside] = 0.0
    return np.clip(mask, 0.0, 1.0)


def align_face(image_bgr: np.ndarray, landmarks) -> tuple[np.ndarray, np.ndarray]:
    """(512x512 aligned face, 2x3 affine from the image to it): a similarity transform
    taking the five ``landmarks`` onto FFHQ_TEMPLATE_512."""
    points = np.asarray(landmarks, np.float32).reshape(5, 2)
    affine = cv2.estimateAffinePartial2D(points, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    if affine is None:
        raise ValueError("the five landmarks give no similarity transform")
    crop = cv2.warpAffine(image_bgr, affine, (NET_SIZE, NET_SIZE), borderMode=cv2.BORDER_CONSTANT,
                          borderValue=ALIGN_BORDER_BGR)
    return crop, affine


def paste_face(image_bgr: np.ndarray, face_512: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image with ``face_512`` warped back through the inverse of ``affine``, the soft mask used):
    the mask is the warped square, eroded and blurred so the seam fades inside the face."""
    height, width = image_bgr.shape[:2]
    inverse = cv2.invertAffineTransform(affine)
    face = cv2.warpAffine(face_512, inverse, (width, height))
    mask = cv2.warpAffine(np.ones((NET_SIZE, NET_SIZE), np.float32), inverse, (width, height))
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8))  # interpolated border pixels carry grey
    edge = int(float(mask.sum()) ** 0.5) // PASTE_EDGE_DIVISOR
    if edge > 0:
        mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
        mask = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)
    soft = mask[..., None]
    pasted = image_bgr.astype(np.float32) * (1.0 - soft) + face.astype(np.float32) * soft
    return np.clip(pasted + 0.5, 0, 255).astype(np.uint8), mask


@dataclass(frozen=True)
class _FaceCrop:
    """One face of a frame: the network's input (None when it is skipped, ``record`` says why),
    and ``paste(frame, restored) -> (frame, record)`` to put the network's answer back."""

    crop: np.ndarray | None
    record: dict | None
    paste: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, dict]] | None = None


class _FaceRestorer:
    name = "base"

    def __init__(self, weights_path, device: str = "auto", max_drift: float = DEFAULT_MAX_DRIFT,
                 batch_size: int = DEFAULT_BATCH_SIZE):
        import torch

        _patch_torchvision()
        self.weights_path = Path(weights_path).expanduser()
        self.device = resolve_device(device)
        self.precision = "float32"
        self.max_drift = float(max_drift)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size  # faces per forward pass
        model = self._build()
        _load_params(model, self.weights_path, self.name)
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        self.model = model.to(torch.device(self.device))

    def _build(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _forward(self, x):  # pragma: no cover - overridden
        raise NotImplementedError

    def _run_nets(self, crops_bgr: list[np.ndarray]) -> list[np.ndarray]:
        """Square BGR crops (any sizes) -> restored crops of the same sizes, ``batch_size`` per
        forward pass; out of GPU memory, the batch is halved for the rest of the job."""
        import torch

        inputs = []
        for crop in crops_bgr:
            interp = cv2.INTER_AREA if crop.shape[0] > NET_SIZE else cv2.INTER_CUBIC
            net_in = cv2.resize(crop, (NET_SIZE, NET_SIZE), interpolation=interp)
            inputs.append(cv2.cvtColor(net_in, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)
        outputs = []
        while len(outputs) < len(inputs):
            chunk = np.ascontiguousarray(np.stack(inputs[len(outputs):len(outputs) + self.batch_size]))
            try:
                with torch.inference_mode():
                    out = self._forward(torch.from_numpy(chunk).to(self.device))
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                continue
            outputs += list(out.clamp(-1.0, 1.0).float().cpu().numpy().transpose(0, 2, 3, 1))
        restored = []
        for crop, out in zip(crops_bgr, outputs, strict=True):
            out_bgr = cv2.cvtColor(np.clip((out + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
            side = crop.shape[0]
            interp = cv2.INTER_AREA if side < NET_SIZE else cv2.INTER_CUBIC
            restored.append(cv2.resize(out_bgr, (side, side), interpolation=interp))
        return restored

    def restore(self, image_bgr: np.ndarray, face_boxes: list[list[int]],
                landmarks: list | None = None) -> tuple[np.ndarray, list[dict]]:
        """Restored copy of the BGR frame and one record per box: {box, applied, drift, alignment, reason}.

        ``landmarks``: per box its five points (x, y) or None; a face with them is
        aligned to the FFHQ template, one without is restored as a square crop.
        As upstream (facexlib's FaceRestoreHelper), every face is cut from the input
        frame, the crops are restored ``batch_size`` at a time, and the faces are
        pasted back in the given order. ``drift`` is None when the network did not run.
        """
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected a uint8 BGR image (H, W, 3), got {image_bgr.dtype} {image_bgr.shape}")
        faces = [self._face_crop(image_bgr, [int(round(v)) for v in raw_box], points)
                 for raw_box, points in zip(face_boxes, landmarks or [None] * len(face_boxes), strict=True)]
        restored = iter(self._run_nets([face.crop for face in faces if face.crop is not None]))
        result, records = image_bgr.copy(), []
        for face in faces:
            if face.crop is None:
                records.append(face.record)
                continue
            result, record = face.paste(result, next(restored))
            records.append(record)
        return result, records

    def _face_crop(self, image: np.ndarray, box: list[int], points) -> _FaceCrop:
        """What the network gets for one face, and how its answer goes back into the frame."""
        if points is not None and min(box[2], box[3]) >= MIN_FACE_SIDE:
            return self._aligned_crop(image, box, points)
        height, width = image.shape[:2]
        x0, y0 = max(box[0], 0), max(box[1], 0)
        x1, y1 = min(box[0] + box[2], width), min(box[1] + box[3], height)
        if x1 - x0 < MIN_FACE_SIDE or y1 - y0 < MIN_FACE_SIDE:
            return _FaceCrop(None, {"box": box, "applied": False, "drift": None, "alignment": None,
                                    "reason": f"face box too small or outside the frame (< {MIN_FACE_SIDE} px)"})
        bw, bh = x1 - x0, y1 - y0
        side = int(round(max(bw, bh) * (1 + 2 * CROP_MARGIN)))
        cx0 = int(round(x0 + bw / 2.0 - side / 2.0))
        cy0 = int(round(y0 + bh / 2.0 - side / 2.0))
        # In-frame part of the square crop; the rest is padded by reflection.
        rx0, ry0 = max(cx0, 0), max(cy0, 0)
        rx1, ry1 = min(cx0 + side, width), min(cy0 + side, height)
        region = image[ry0:ry1, rx0:rx1]
        crop = cv2.copyMakeBorder(
            region, ry0 - cy0, cy0 + side - ry1, rx0 - cx0, cx0 + side - rx1, cv2.BORDER_REFLECT_101
        )
        box_in_region = (x0 - rx0, y0 - ry0, bw, bh)
        bxs = slice(box_in_region[0], box_in_region[0] + bw)
        bys = slice(box_in_region[1], box_in_region[1] + bh)

        def paste(result: np.ndarray, restored_crop: np.ndarray) -> tuple[np.ndarray, dict]:
            restored_region = restored_crop[ry0 - cy0 : ry1 - cy0, rx0 - cx0 : rx1 - cx0]
            drift = round(identity_drift(region[bys, bxs], restored_region[bys, bxs]), 4)
            if drift > self.max_drift:
                return result, {"box": box, "applied": False, "drift": drift, "alignment": SQUARE_CROP,
                                "reason": f"identity drift {drift:.2f} > {self.max_drift:.2f}: kept original"}
            mask = _blend_mask(region.shape[0], region.shape[1], box_in_region)[..., None]
            under = result[ry0:ry1, rx0:rx1].astype(np.float32)
            blended = under * (1.0 - mask) + restored_region.astype(np.float32) * mask
            result = result.copy()
            result[ry0:ry1, rx0:rx1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
            return result, {"box": box, "applied": True, "drift": drift, "alignment": SQUARE_CROP,
                            "reason": f"restored by {self.name} (identity drift {drift:.2f} <= {self.max_drift:.2f})"}

        return _FaceCrop(crop, None, paste)

    def _aligned_crop(self, image: np.ndarray, box: list[int], points) -> _FaceCrop:
        try:
            aligned, affine = align_face(image, points)
        except ValueError as error:
            return _FaceCrop(None, {"box": box, "applied": False, "drift": None, "alignment": FFHQ_ALIGNMENT,
                                    "reason": str(error)})

        def paste(result: np.ndarray, restored: np.ndarray) -> tuple[np.ndarray, dict]:
            x, y, w, h = ALIGNED_FACE_BOX
            drift = round(identity_drift(aligned[y:y + h, x:x + w], restored[y:y + h, x:x + w]), 4)
            if drift > self.max_drift:
                return result, {"box": box, "applied": False, "drift": drift, "alignment": FFHQ_ALIGNMENT,
                                "reason": f"identity drift {drift:.2f} > {self.max_drift:.2f}: kept original"}
            pasted, _ = paste_face(result, restored, affine)
            return pasted, {"box": box, "applied": True, "drift": drift, "alignment": FFHQ_ALIGNMENT,
                            "reason": f"restored by {self.name}, aligned to the FFHQ template "
                                      f"(identity drift {drift:.2f} <= {self.max_drift:.2f})"}

        return _FaceCrop(aligned, None, paste)


class CodeFormerRestorer(_FaceRestorer):
    """CodeFormer (Zhou et al. 2022); ``fidelity`` is its ``w``: 0 = most restoration, 1 = most faithful."""

    name = "codeformer"

    def __init__(self, weights_path, device: str = "auto", fidelity: float = DEFAULT_FIDELITY,
                 max_drift: float = DEFAULT_MAX_DRIFT, batch_size: int = DEFAULT_BATCH_SIZE):
        if not 0.0 <= fidelity <= 1.0:
            raise ValueError(f"fidelity must be in 0..1, got {fidelity}")
        self.fidelity = float(fidelity)
        super().__init__(weights_path, device=device, max_drift=max_drift, batch_size=batch_size)

    def _build(self):
        from codeformer.basicsr.archs.codeformer_arch import CodeFormer

        return CodeFormer(dim_embd=512, codebook_size=1024, n_head=8, n_layers=9,
                          connect_list=["32", "64", "128", "256"])

    def _forward(self, x):
        return self.model(x, w=self.fidelity, adain=True)[0]


class GFPGANRestorer(_FaceRestorer):
    """GFPGAN v1.3/v1.4 (clean architecture). Noise inputs are the checkpoint's fixed buffers,
    so runs are deterministic."""

    name = "gfpgan"

    def _build(self):
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

        return GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                             fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True,
                             narrow=1, sft_half=True)

    def _forward(self, x):
        return self.model(x, return_rgb=False, randomize_noise=False)[0]


RESTORERS = {"codeformer": CodeFormerRestorer, "gfpgan": GFPGANRestorer}


def load_face_restorer(backend: str, weights_path, device: str = "auto", **kwargs) -> _FaceRestorer:
    """``backend`` is "codeformer" or "gfpgan"; kwargs go to its constructor."""
    try:
        cls = RESTORERS[backend]
    except KeyError:
        raise ValueError(f"unknown face restorer {backend!r}: expected one of {sorted(RESTORERS)}") from None
    return cls(weights_path, device=device, **kwargs)
