"""SAM2 character segmentation: every instance from automatic mask generation, the target cut out.

SAM2's automatic mask generator prompts the model with a grid of points and
returns everything it can separate: whole characters, but also their parts
(face, shirt) and the set itself (floor, wall, sky). ``filter_instances``
keeps what can be a character, one mask per character; the target is then
picked and its edge softened exactly as for GrabCut (``pick_target``,
``soft_alpha``), so both backends report comparable picks and alphas.

When the frame's analysis says the character finder ran (``finder`` is
frameloom.detector's, with a ``foreground_box``), SAM2 is instead prompted with
that box: the finder already says which character is the target, and one box
prompt segments it far more reliably than picking among a grid's masks. The
result's notes then start with ``BOX_PROMPT_NOTE``.

Imported only when a SAM2 model is selected: it needs torch and sam2.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

from .detector import FINDER
from .devices import resolve_device
from .matte import soft_alpha
from .segmentation import (
    FACE_COVERAGE_TO_PICK,
    Box,
    Segmentation,
    faces_from_hint,
    mask_bounding_box,
    pick_target,
    valid_box,
)

# segmentation_model (config enum) -> the config packaged with sam2, as build_sam2 names it.
SAM2_CONFIGS = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

# A mask covering more of the frame than this, or touching this many of its
# borders, is the set rather than a character (unless it holds a hinted face:
# a close-up fills the frame and crosses three borders).
BACKGROUND_AREA_SHARE = 0.6
BACKGROUND_BORDERS = 3
# Overlapping this much with a larger kept mask, a mask is the same object again.
DUPLICATE_IOU = 0.8
# Lying this much inside a larger kept mask, a mask is one of its parts; the whole is kept.
PART_INSIDE_SHARE = 0.9
# A box-prompted mask is kept within the finder's box grown by this share of its size
# on each side: detector boxes are tight (a raised hand may stick out), but anything
# further out is a touching set piece SAM2 leaked into, not the character.
BOX_PROMPT_MARGIN = 0.1
# How a box-prompted result's notes start (the meta records the notes).
BOX_PROMPT_NOTE = "finder box prompt"


class SAM2Segmenter:
    """SAM2 automatic masks -> character instances -> target with a soft edge.

    The model is built once here and reused for every frame segmented, by both the
    automatic mask generator and the box-prompt predictor.
    """

    def __init__(
        self,
        model_name: str,
        checkpoint: str | Path,
        device: str = "cpu",
        points_per_side: int = 20,
        min_instance_size: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        batch_points: int = 32,
    ):
        if model_name not in SAM2_CONFIGS:
            raise ValueError(f"unknown SAM2 model {model_name!r}; expected one of {sorted(SAM2_CONFIGS)}")
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"SAM2 checkpoint for {model_name} not found: {checkpoint}")
        self.name = f"sam2:{model_name}"
        self.min_instance_size = min_instance_size
        self.device = resolve_device(device)
        self.precision = "bfloat16 autocast" if self.device.startswith("cuda") else "float32"
        config = SAM2_CONFIGS[model_name]
        try:
            self.model = build_sam2(config, str(checkpoint), device=self.device)
        except RuntimeError as error:
            # build_sam2 logs mismatched keys and raises an empty RuntimeError.
            reason = str(error) or "its keys do not match the model (missing/unexpected keys are logged above)"
            raise RuntimeError(f"cannot load {checkpoint} as {model_name} ({config}): {reason}") from error
        with warnings.catch_warnings():
            # sam2 scripts its input transforms with TorchScript, which torch 2.x deprecates; harmless.
            warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
            self._generator = SAM2AutomaticMaskGenerator(
                self.model,
                points_per_side=points_per_side,
                points_per_batch=batch_points,
                pred_iou_thresh=pred_iou_thresh,
                stability_score_thresh=stability_score_thresh,
            )
            self._predictor = SAM2ImagePredictor(self.model)

    def segment(self, image_bgr: np.ndarray, hint: dict | None = None) -> Segmentation:
        height, width = image_bgr.shape[:2]
        # The model sees every frame at image_size (1024 px) and predicts masks
        # at a quarter of that: generating on a larger copy only costs memory
        # and time. The target's edge is refitted at full resolution below.
        scale = min(1.0, self.model.image_size / max(height, width))
        working = _resize(image_bgr, scale, cv2.INTER_AREA)
        box = finder_box(hint or {}, width, height)
        if box is not None:
            return self._segment_box(image_bgr, working, scale, box)
        records = self._generate(cv2.cvtColor(working, cv2.COLOR_BGR2RGB))

        face_boxes = [_scale_box(box, scale) for box, _ in faces_from_hint(hint or {}, width, height)]
        kept, dropped = filter_instances(
            [record["segmentation"] for record in records], self.min_instance_size * scale, face_boxes
        )
        dropped_text = ", ".join(f"{count} {reason}" for reason, count in sorted(dropped.items())) or "none"
        tally = f"sam2 kept {len(kept)} of {len(records)} mask(s), dropped {dropped_text}"
        if not kept:
            return Segmentation.nothing_found(height, width, self.name,
                                              f"no character above {self.min_instance_size} px found; {tally}")

        size = (width, height)
        instance_masks = [_upsample(mask, size) >= 0.5 for mask in kept]
        target_index, target_score, why = pick_target(image_bgr, instance_masks, hint)
        return Segmentation(
            target_alpha=soft_alpha(image_bgr, _upsample(kept[target_index], size), 1.0 / scale),
            instance_masks=instance_masks,
            target_index=target_index,
            target_score=target_score,
            backend=self.name,
            notes=f"{why}; {tally}",
        )

    def _segment_box(self, image_bgr: np.ndarray, working: np.ndarray, scale: float, box: Box) -> Segmentation:
        """The target from one box prompt on the working copy, kept near the box, edge refitted at full size."""
        height, width = image_bgr.shape[:2]
        x, y, w, h = box
        prompt = np.array([x, y, x + w, y + h], np.float32) * scale
        with torch.inference_mode(), self._autocast():
            self._predictor.set_image(cv2.cvtColor(working, cv2.COLOR_BGR2RGB))
            masks, scores, _ = self._predictor.predict(box=prompt, multimask_output=False)
        near = np.zeros(working.shape[:2], bool)
        pad_x, pad_y = BOX_PROMPT_MARGIN * w * scale, BOX_PROMPT_MARGIN * h * scale
        near[max(0, int(prompt[1] - pad_y)):max(0, int(np.ceil(prompt[3] + pad_y))),
             max(0, int(prompt[0] - pad_x)):max(0, int(np.ceil(prompt[2] + pad_x)))] = True
        mask = (masks[0] > 0.5) & near
        label = f"{BOX_PROMPT_NOTE} {list(box)}"
        found = mask_bounding_box(mask)
        if found is None or max(found[2], found[3]) < self.min_instance_size * scale:
            return Segmentation.nothing_found(height, width, self.name,
                                              f"{label}: no character above {self.min_instance_size} px in it")
        size = (width, height)
        soft = _upsample(mask, size)
        score = float(np.clip(scores[0], 0.0, 1.0))  # SAM2's predicted IoU of the mask
        return Segmentation(
            target_alpha=soft_alpha(image_bgr, soft, 1.0 / scale),
            instance_masks=[soft >= 0.5],
            target_index=0,
            target_score=score,
            backend=self.name,
            notes=f"{label}: sam2 mask, predicted IoU {score:.2f}, {mask.mean():.0%} of the frame",
        )

    def _generate(self, rgb: np.ndarray) -> list[dict]:
        """The automatic masks; out of GPU memory, the prompt points per batch are halved for the
        rest of the job and the frame is tried again."""
        while True:
            try:
                with torch.inference_mode(), self._autocast():
                    return self._generator.generate(rgb)
            except torch.OutOfMemoryError:
                if self._generator.points_per_batch == 1:
                    raise
                self._generator.points_per_batch //= 2
                torch.cuda.empty_cache()

    def _autocast(self):
        # SAM2 is meant to run under bfloat16 autocast on GPUs; most CPUs have no fast bfloat16 matmul.
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def finder_box(hint: dict, width: int, height: int) -> Box | None:
    """The target's box from the character finder, clipped to the ``width`` x ``height``
    image; None when the analysis has none (the finder did not run, or found nothing).

    The hint's boxes are in the image's pixels: the analysis itself for a frame, or
    strategies.scaled_hint's copy for enhance_segment's upscale of it."""
    if hint.get("finder") != FINDER or hint.get("foreground_box") is None:
        return None
    x, y, w, h = (float(v) for v in hint["foreground_box"])
    return valid_box((x, y, w, h), width, height)


def filter_instances(
    masks: list[np.ndarray], min_instance_size: float, face_boxes: Sequence[Box] = ()
) -> tuple[list[np.ndarray], Counter]:
    """The masks that can be characters, largest first, and how many were dropped for what.

    Dropped: ``tiny`` (longest side below ``min_instance_size`` px),
    ``background`` (too much of the frame or too many of its borders, unless
    it holds one of ``face_boxes``), ``duplicate`` (the same object as a
    larger kept mask) and ``part`` (inside a larger kept mask). Ties in area
    keep their input order, so the result is as deterministic as the input.
    """
    dropped: Counter = Counter()
    candidates = []
    for mask in masks:
        box = mask_bounding_box(mask)
        if box is None or max(box[2], box[3]) < min_instance_size:
            dropped["tiny"] += 1
        elif _looks_like_background(mask) and not _holds_a_face(mask, face_boxes):
            dropped["background"] += 1
        else:
            candidates.append((int(mask.sum()), box, mask))
    candidates.sort(key=lambda candidate: -candidate[0])

    kept: list[tuple[int, Box, np.ndarray]] = []
    for area, box, mask in candidates:
        overlaps = [(_intersection(box, mask, other_box, other), other_area) for other_area, other_box, other in kept]
        if any(shared / (area + other_area - shared) > DUPLICATE_IOU for shared, other_area in overlaps):
            dropped["duplicate"] += 1
        elif any(shared / area > PART_INSIDE_SHARE for shared, _ in overlaps):
            dropped["part"] += 1
        else:
            kept.append((area, box, mask))
    return [mask for _, _, mask in kept], dropped


def _looks_like_background(mask: np.ndarray) -> bool:
    borders = sum(bool(edge.any()) for edge in (mask[0], mask[-1], mask[:, 0], mask[:, -1]))
    return mask.mean() > BACKGROUND_AREA_SHARE or borders >= BACKGROUND_BORDERS


def _holds_a_face(mask: np.ndarray, face_boxes: Sequence[Box]) -> bool:
    for x, y, w, h in face_boxes:
        face = mask[y : y + h, x : x + w]
        if face.size and face.mean() >= FACE_COVERAGE_TO_PICK:
            return True
    return False


def _intersection(box: Box, mask: np.ndarray, other_box: Box, other: np.ndarray) -> int:
    """Pixels two masks share, counted only where their boxes overlap."""
    x0, y0 = max(box[0], other_box[0]), max(box[1], other_box[1])
    x1 = min(box[0] + box[2], other_box[0] + other_box[2])
    y1 = min(box[1] + box[3], other_box[1] + other_box[3])
    if x1 <= x0 or y1 <= y0:
        return 0
    return int((mask[y0:y1, x0:x1] & other[y0:y1, x0:x1]).sum())


def _resize(image: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=interpolation)


def _upsample(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size bool mask as float32 0..1 at frame ``size`` (width, height), edges interpolated."""
    soft = mask.astype(np.float32)
    if soft.shape[::-1] == size:
        return soft
    return cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR)


def _scale_box(box: Box, scale: float) -> Box:
    x, y, w, h = box
    return round(x * scale), round(y * scale), max(1, round(w * scale)), max(1, round(h * scale))
