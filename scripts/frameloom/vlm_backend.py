"""Qwen2-VL / Qwen2.5-VL captioner through ``transformers``, loaded once per job.

The model class follows the ``model_type`` of the folder's config.json, so
2B, 3B and 7B checkpoints of either family load the same way, offline
(``local_files_only``). bf16 on CUDA, fp32 on the CPU; greedy decoding, so the
same image and prompt give the same caption; ``max_new_tokens`` bounds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .devices import resolve_device

MODEL_CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}


class QwenVLCaptioner:
    """``caption(images, prompt)``: one answer per RGB image, generated as one padded batch."""

    def __init__(self, model_dir: str, device: str = "auto", max_new_tokens: int = 64):
        import torch
        import transformers
        from transformers import AutoConfig, AutoProcessor

        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        if config.model_type not in MODEL_CLASSES:
            raise ValueError(f"{model_dir}: model_type {config.model_type!r} is not one of {sorted(MODEL_CLASSES)}")
        model_class = getattr(transformers, MODEL_CLASSES[config.model_type])
        self.device = resolve_device(device)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = model_class.from_pretrained(model_dir, local_files_only=True, dtype=dtype).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        # Decoder-only batches pad on the left, so every answer starts right after its prompt.
        self.processor.tokenizer.padding_side = "left"
        self.max_new_tokens = max_new_tokens
        self.name = f"{model_class.__name__} ({Path(model_dir).name})"

    def caption(self, images: list[np.ndarray], prompt: str) -> list[str]:
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[text] * len(images), images=[Image.fromarray(image) for image in images],
                                padding=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        answers = generated[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(answers, skip_special_tokens=True)
