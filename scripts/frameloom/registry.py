"""The strategies and the batched model steps, each described once.

Nothing here imports from the package: every layer may read it. The rules are
generated from it (rules/strategies.smk), the output tree (layout.strategy_outputs),
the settings and model steps of a frame (config.RunConfig), the preview's image
count (cli) and the report's strategy list all read it. Each strategy's code lives
in frameloom.strategies (``EXECUTORS``: one in-process job per frame; ``EXPORTERS``:
a per-frame export of its model steps' cache entries), keyed by these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Outputs = dict[str, "str | list[str]"]


@dataclass(frozen=True)
class Strategy:
    name: str
    # Named output patterns (``{frame}`` wildcard) under ``<out>/<name>/``, from the strategy's config block.
    outputs: Callable[[dict], Outputs]
    # Training images one frame gives before curation (the seed's arithmetic).
    images_per_frame: Callable[[dict], int]
    # The batched model steps a frame goes through, in order: {step: the step whose entry it
    # continues, or None}; none for a strategy that runs in one in-process job per frame.
    model_steps: Callable[[dict], dict[str, str | None]] | None = None
    # Other strategies' config blocks its settings carry (besides its own).
    reads: tuple[str, ...] = ()

    @property
    def uses_models(self) -> bool:
        return self.model_steps is not None


def _keep_full_outputs(cfg: dict) -> Outputs:
    return {"image": "images/{frame}.png", **({"caption": "captions/{frame}.txt"} if cfg["generate_caption"] else {})}


def _segment_outputs(cfg: dict) -> Outputs:
    outputs: Outputs = {}
    for role in ("character", "background", "composite"):
        if cfg[f"save_{role}"]:
            outputs[role] = f"images/{{frame}}_{role}.png"
    for role in ("character", "background"):
        if cfg[f"save_{role}"] and cfg["generate_captions"]:
            outputs[f"{role}_caption"] = f"captions/{{frame}}_{role}.txt"
    if cfg["save_masks"]:
        outputs["mask"] = "masks/{frame}_mask.png"
    return outputs


def _occlusion_outputs(cfg: dict) -> Outputs:
    count = cfg["variations_per_image"]
    return {"images": [f"images/{{frame}}_occ{i}.png" for i in range(count)],
            "captions": [f"captions/{{frame}}_occ{i}.txt" for i in range(count)]}


def _enhance_stem(cfg: dict) -> str:
    # Without segmentation the enhanced whole frame is the training image.
    return "enhanced_character" if cfg["apply_segmentation"] else "enhanced"


def _segment_steps(cfg: dict) -> dict[str, str | None]:
    # The inpainted background is only for the background and composite outputs.
    return {"masks": None, **({"inpaint": "masks"} if cfg["save_background"] or cfg["save_composite"] else {})}


def _enhance_steps(cfg: dict) -> dict[str, str | None]:
    return {"upscale": None, "restore_faces": "upscale",
            **({"masks": "restore_faces"} if cfg["apply_segmentation"] else {})}


STRATEGY_REGISTRY = {strategy.name: strategy for strategy in (
    Strategy("keep_full", _keep_full_outputs, lambda cfg: 1),
    Strategy("segment", _segment_outputs, lambda cfg: int(cfg["save_character"]) + int(cfg["save_background"]),
             model_steps=_segment_steps),
    Strategy("create_occlusion", _occlusion_outputs, lambda cfg: cfg["variations_per_image"]),
    Strategy("enhance_segment",
             lambda cfg: {"image": f"images/{{frame}}_{_enhance_stem(cfg)}.png",
                          "caption": f"captions/{{frame}}_{_enhance_stem(cfg)}.txt"},
             lambda cfg: 1, model_steps=_enhance_steps, reads=("segment",)),
)}
STRATEGIES = tuple(STRATEGY_REGISTRY)

# The batched model steps (frameloom.model_step), each one rule and one conda env: the
# strategy block it reads, the keys of it that change its results (and so rerun it and
# only what follows) and the model requirement it loads (backends.model_requirements;
# the models that can fill it, and so the step's env, are in models.MODEL_REGISTRY).
MODEL_STEPS = {
    "upscale": ("enhance_segment", ("enhancement_steps", "upscale_model", "upscale_factor", "upscale_below",
                                    "upscale_tile", "deblur_below"), "upscale"),
    "restore_faces": ("enhance_segment", ("enhancement_steps", "face_enhance_model", "face_enhance_fidelity",
                                          "identity_max_drift", "deblur_below"), "face_enhance"),
    "masks": ("segment", ("segmentation_model", "min_instance_size", "points_per_side"), "segmentation"),
    "inpaint": ("segment", ("inpainting_model", "inpainting_fallback", "mask_dilation"), "inpainting"),
}
