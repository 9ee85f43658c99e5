"""Tiny stand-ins for model weights, in the real on-disk formats, for tests and benchmarks.

No SAM2, LaMa, CodeFormer or GFPGAN weights can be downloaded here, so these
write a random-weight SAM2 checkpoint (``{"model": state_dict}``, what
``build_sam2`` loads), a TorchScript module with LaMa's call signature (what
simple-lama loads) and random-weight face restorers (``{"params_ema":
state_dict}``, what the face_restore adapters load).
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


def save_random_face_restorer(path: Path, restorer_class, seed: int = 0) -> Path:
    """The network a frameloom.face_restore adapter class builds, random weights, official format."""
    torch.manual_seed(seed)
    model = restorer_class._build(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": model.state_dict()}, path)
    return path


def save_mean_fill_lama(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(MeanFill()), str(path))
    return path


_QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template the Qwen2-VL / Qwen2.5-VL Instruct checkpoints ship.
_QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Caption-like English the tiny tokenizer's BPE merges are trained on.
_CAPTION_CORPUS = """
a photo of a person standing outside on a sunny day with trees and sky in the background
man woman child girl boy dog cat bird horse car bus truck bicycle street road city building
house window door wall floor table chair sofa bed kitchen room indoor outdoor night morning
red green blue yellow black white gray brown orange purple pink dark light bright colorful
small large tall short old young happy smiling sitting walking running holding looking
water river lake sea beach sand mountain hill forest grass field flower garden park snow rain
cloud sun shadow reflection portrait close up wide shot blurry sharp detailed simple texture
shirt dress jacket hat glasses hair face hand arm leg eye mouth nose ear head body clothing
food plate cup bottle glass fruit apple bread cake book phone computer screen camera sign text
is are was were has have the an and or but with without near next to under over behind
describe the image this picture shows there two three several many some one group of people
animal tree leaf branch rock stone road sidewalk bridge tower church castle train boat ship airplane
sky sunset sunrise evening afternoon winter summer spring autumn fog storm light lamp candle fire
wooden metal plastic paper stone glass fabric leather round square long thin thick soft hard wet dry
playing eating drinking reading writing talking smiling laughing standing jumping riding driving
front back left right top bottom center corner side middle inside outside above below between
baby family friends crowd team player student teacher doctor worker police soldier artist
painting drawing sketch cartoon anime illustration render photograph selfie landscape scene view
football ball game sport music guitar piano dance party wedding birthday holiday festival street
user assistant system You are a helpful assistant. Describe. Picture Video image video frame object
"""


def save_tiny_qwen2_vl(path: Path, model_type: str = "qwen2_vl", seed: int = 0) -> Path:
    """A random-weight Qwen2-VL or Qwen2.5-VL checkpoint with its processor, tokenizer and chat template."""
    import json

    from tokenizers import pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import GenerationConfig, Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if model_type == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model
        from transformers import Qwen2VLProcessor as Processor

        vision_config = {"depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2, "hidden_size": 64}
    elif model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
        from transformers import Qwen2_5_VLProcessor as Processor

        vision_config = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        }
    else:
        raise ValueError(f"unknown Qwen VL model_type {model_type!r}")

    # Byte-level BPE trained through Qwen2Tokenizer's own pre-tokenizer. The alphabet is printable ASCII
    # only, so whatever random weights generate decodes to readable text (non-ASCII input is dropped).
    backend = Qwen2Tokenizer(unk_token=None, eos_token=None, pad_token=None).backend_tokenizer
    alphabet = sorted(c for c in pre_tokenizers.ByteLevel.alphabet() if c.isascii() and c.isprintable())
    trainer = BpeTrainer(vocab_size=1000, initial_alphabet=alphabet + ["Ġ", "Ċ", "ĉ"], show_progress=False)
    backend.train_from_iterator(_CAPTION_CORPUS.strip().splitlines() * 4, trainer=trainer)
    bpe = json.loads(backend.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=bpe["vocab"],
        merges=[tuple(merge) for merge in bpe["merges"]],
        unk_token=None,
        eos_token=None,
        pad_token=None,
        model_max_length=32768,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIAL_TOKENS)})
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|endoftext|>"
    ids = dict(zip(_QWEN_SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(list(_QWEN_SPECIAL_TOKENS))))

    # 56x56 to 112x112 pixels: a 64-128 px image becomes 16-64 patches, i.e. 4-16 image tokens.
    pixels = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    processor = Processor(
        image_processor=Qwen2VLImageProcessor(size=pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=pixels),
        chat_template=_QWEN2_VL_CHAT_TEMPLATE,
    )

    config = Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            # M-RoPE splits half the head dim (64 / 4 / 2 = 8) into temporal, height and width sections.
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Model(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
