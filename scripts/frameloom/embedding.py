"""Neural image embedding for character identity: DINOv2 through ``transformers``, loaded once per job.

The classical appearance signature (frameloom.target) compares colour, layout
and proportions; on real film frames it put a bird, a rabbit and a piece of
wall in one cluster. DINOv2's self-supervised features tell characters apart
by what they look like as objects. Each cut-out (its colour premultiplied onto
neutral grey, as frameloom.strategies stores it) becomes the L2-normalised CLS
token of the last layer, so two cut-outs' similarity is the dot product of
their embeddings. Batches of ``batch_size``; fp16/bf16 on CUDA, fp32 on the
CPU. torch and transformers are imported when an embedder is built, so
importing this module needs neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .devices import inference_dtype, resolve_device
from .models import MODEL_REGISTRY

MODEL_NAME = "facebook/dinov2-small"
# Under models_dir: where ``python -m frameloom.download --models dinov2_small`` puts the snapshot.
DEFAULT_MODEL_DIR = MODEL_REGISTRY["dinov2"].default_path
# What the identity step names as its descriptor when this model made it.
EMBEDDER = "dinov2"
# The files from_pretrained needs: a folder without all of them (a half-finished download) is no model.
REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def model_label(model_dir: str | Path) -> str:
    """MODEL_NAME for the default folder, else the folder's own name (another size, a fine-tune)."""
    name = Path(model_dir).name
    return MODEL_NAME if name == Path(DEFAULT_MODEL_DIR).name else name


class ImageEmbedder:
    """``embed(images_bgr)``: one unit-length row per image."""

    def __init__(self, model_dir: str | Path, device: str = "auto", batch_size: int = 16):
        from transformers import AutoImageProcessor, AutoModel

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self._dtype, self.dtype = inference_dtype(self.device)
        self.processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True,
                                               dtype=self._dtype).to(self.device).eval()
        self.model_name = model_label(model_dir)
        self.batch_size = batch_size

    def embed(self, images_bgr: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32, each row of unit length; BGR uint8 images of any size."""
        import torch

        rows = []
        for start in range(0, len(images_bgr), self.batch_size):
            batch = [np.ascontiguousarray(image[..., 2::-1]) for image in images_bgr[start:start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(pixel_values=inputs["pixel_values"].to(self._dtype)).last_hidden_state
            rows.append(hidden[:, 0].float().cpu().numpy())
        if not rows:
            return np.zeros((0, 0), np.float32)
        vectors = np.concatenate(rows)
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def embedding_input(image: np.ndarray) -> np.ndarray:
    """What the embedder sees of an image: a cut-out (BGRA) on neutral grey, cropped to
    its character; an opaque picture (a reference photo, BGR) as it is."""
    from .imageops import uniform_background

    if image.ndim != 3 or image.shape[2] != 4:
        return image
    opaque = image[..., 3] > 127
    if not opaque.any():
        raise ValueError("the cut-out's alpha is empty")
    ys, xs = np.nonzero(opaque)
    on_grey = uniform_background(image, "grey")[..., :3]
    return np.ascontiguousarray(on_grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1])
