"""Open-vocabulary character finder: Grounding DINO through ``transformers``, loaded once per job.

The characters of a 3D film are people, animals and creatures; a closed-set
detector (COCO's "person") misses most of them. Grounding DINO takes its
classes as text, so "person. animal. creature. cartoon character." finds them
all, and the box it gives the target is what SAM2 is prompted with
(frameloom.sam2_backend). Frames run ``batch_size`` at a time, one forward
each; a CUDA out-of-memory error halves the batch for the rest of the job
instead of failing it. bf16 on CUDA (fp16 on cards without bf16), fp32 on the
CPU. torch and transformers are imported when a detector is built, so
importing this module needs neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .devices import inference_dtype, resolve_device
from .models import MODEL_REGISTRY

MODEL_NAME = "IDEA-Research/grounding-dino-tiny"
# Under models_dir: where ``python -m frameloom.download --models grounding_dino_tiny`` puts the snapshot.
DEFAULT_MODEL_DIR = MODEL_REGISTRY["grounding_dino"].default_path
# What an analysis names as its "finder" when its subject box came from this detector.
FINDER = "grounding_dino"
# The files from_pretrained needs (what transformers 5 saves for this model): a folder
# without all of them, a half-finished download for one, is no model.
REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                  "tokenizer_config.json", "vocab.txt")
DEFAULT_PROMPTS = ("person", "animal", "creature", "cartoon character")
# Grounding DINO's queries often land on the same character twice (once per phrase):
# class-agnostic, so "person" and "cartoon character" on one body count once.
NMS_IOU = 0.5
# A box over this share of the frame is the shot itself ("cartoon character" matches a
# whole animated frame), not a character in it.
MAX_FRAME_SHARE = 0.95


def text_prompt(prompts: Sequence[str]) -> str:
    """The prompt the way Grounding DINO was trained on it: lower-case phrases, each ended by a dot.

    ``["Person", "cartoon character."]`` -> ``"person. cartoon character."``"""
    phrases = [phrase.strip().rstrip(".").strip().lower() for phrase in prompts]
    phrases = [phrase for phrase in phrases if phrase]
    if not phrases:
        raise ValueError("no prompt phrase to detect (expected e.g. 'person' 'animal')")
    return " ".join(f"{phrase}." for phrase in phrases)


def model_label(model_dir: str | Path) -> str:
    """MODEL_NAME for the default folder, else the folder's own name (another size, a fine-tune)."""
    name = Path(model_dir).name
    return MODEL_NAME if name == Path(DEFAULT_MODEL_DIR).name else name


class CharacterDetector:
    """``detect(images_bgr, prompts)``: each frame's character boxes, best first."""

    def __init__(self, model_dir: str | Path, device: str = "auto", box_threshold: float = 0.3,
                 text_threshold: float = 0.25, batch_size: int = 4):
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self._dtype, self.dtype = inference_dtype(self.device)
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(
            model_dir, local_files_only=True, dtype=self._dtype).to(self.device).eval()
        self.model_name = model_label(model_dir)
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.batch_size = batch_size
        # Tokens a label must not contain: [CLS], [SEP], padding.
        self._special = set(self.processor.tokenizer.all_special_tokens)

    def detect(self, images_bgr: list[np.ndarray], prompts: Sequence[str]) -> list[list[dict]]:
        """Per image: ``{"box": [x, y, w, h], "score", "label"}`` dicts in frame pixels, highest score first."""
        import torch

        text = text_prompt(prompts)
        images = [_rgb(image) for image in images_bgr]
        results: list[list[dict]] = []
        while len(results) < len(images):
            chunk = images[len(results):len(results) + self.batch_size]
            try:
                results += self._forward(chunk, text)
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise
                # Frames are similar in size, so a batch too large once is too large for the rest.
                self.batch_size = len(chunk) // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        return results

    def _forward(self, images: list[np.ndarray], text: str) -> list[list[dict]]:
        import torch

        inputs = self.processor(images=images, text=[text] * len(images), return_tensors="pt")
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self._dtype)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        # Thresholds and box scaling in fp32, whatever the model ran in.
        outputs.logits, outputs.pred_boxes = outputs.logits.float(), outputs.pred_boxes.float()
        found = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[image.shape[:2] for image in images])
        return [self._tidy(result, image.shape[:2]) for result, image in zip(found, images, strict=True)]

    def _tidy(self, result: dict, size: tuple[int, int]) -> list[dict]:
        """Frame-sized boxes dropped, overlaps suppressed, the rest as integer [x, y, w, h] in the frame."""
        height, width = size
        boxes = result["boxes"].cpu().numpy().astype(np.float64).reshape(-1, 4)
        scores = result["scores"].cpu().numpy().astype(np.float64)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        candidates = np.flatnonzero((areas > 0) & (areas <= MAX_FRAME_SHARE * width * height))
        detections = []
        for index in candidates[nms(boxes[candidates], scores[candidates], NMS_IOU)]:
            x0, y0 = int(np.floor(boxes[index, 0])), int(np.floor(boxes[index, 1]))
            x1 = min(width, int(np.ceil(boxes[index, 2])))
            y1 = min(height, int(np.ceil(boxes[index, 3])))
            if x1 > x0 and y1 > y0:
                detections.append({"box": [x0, y0, x1 - x0, y1 - y0], "score": round(float(scores[index]), 4),
                                   "label": self._label(result["text_labels"][index])})
        return detections

    def _label(self, decoded: str) -> str:
        """The matched phrase(s) without the prompt's dots and the tokenizer's special tokens."""
        return " ".join(word for word in decoded.replace(".", " ").split() if word not in self._special)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the [x0, y0, x1, y1] boxes kept by greedy non-maximum suppression, highest score first.

    Ties keep their input order, so the result is as deterministic as the model's."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = (np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])).clip(0)
        height = (np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])).clip(0)
        shared = width * height
        order = rest[shared <= iou_threshold * (areas[best] + areas[rest] - shared)]
    return np.array(keep, dtype=int)


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB from the BGR (or BGRA, or grey) frames frameloom.imageio reads."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1])
