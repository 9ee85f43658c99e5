"""The merged training folder's concepts, their repeats, and configs for the trainers.

With ``balance_repeats`` each strategy gets its own kohya concept folder
``{repeats}_{trigger}_{strategy}`` and repeats chosen so the effective mix
(images x repeats, what a trainer sees per epoch) matches ``strategy_targets``:

    r_s = max(1, round(base * N * t_s / n_s))

with ``n_s`` the strategy's training images, ``N`` their total, ``base`` the
configured repeats and ``t_s`` the targets renormalised over the strategies
that have images. Rounding is to the nearest integer, never below 1, so a
strategy with many images and a small target can end up above its share.
Repeats never exceed ``max_repeats`` (merge.max_repeats, default 2 x base):
three images seen 288 times an epoch teach those three images, not the
character, so a strategy with too few images stays short of its target
instead, and its concept says by how much (``wanted_repeats``,
``shortfall``); the report gives the achieved effective mix next to the
targets.

Exports: a kohya sd-scripts dataset config (``--dataset_config``) and a
OneTrainer concepts file, both with every flip and colour augmentation off
(a 3D character's asymmetries and colours are part of its identity).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from .registry import STRATEGIES


def balanced_repeats(images: dict[str, int], targets: dict[str, float], base: int) -> dict[str, int]:
    """{strategy: repeats} for the strategies that have training images, before any cap
    (see module docstring)."""
    present = {s: n for s, n in images.items() if n > 0}
    weight = sum(targets[s] for s in present)
    if not present or weight <= 0:
        return {s: base for s in present}
    effective = base * sum(present.values())
    return {s: max(1, round(effective * targets[s] / weight / n)) for s, n in present.items()}


def plan_concepts(records: list[dict], trigger_word: str, base: int, targets: dict[str, float],
                  balance: bool, max_repeats: int | None = None) -> dict[str, dict]:
    """{folder name: {"strategy", "repeats", "wanted_repeats", "images", "target", "effective_share",
    "shortfall"}}: where each training record goes (``concept_of``) and what the report says about it.
    ``max_repeats``: the cap (None: 2 x base)."""
    images = {s: sum(1 for r in records if r["strategy"] == s) for s in STRATEGIES}
    if not balance:
        total = sum(images.values())
        return {f"{base}_{trigger_word}": {"strategy": None, "repeats": base, "wanted_repeats": base,
                                           "images": total, "target": 1.0,
                                           "effective_share": 1.0 if total else 0.0, "shortfall": 0.0}}
    cap = max_repeats or 2 * base
    wanted = balanced_repeats(images, targets, base)
    repeats = {s: min(r, cap) for s, r in wanted.items()}
    effective_total = sum(images[s] * r for s, r in repeats.items())
    weight = sum(targets[s] for s in repeats) or 1.0
    concepts = {}
    for s, r in repeats.items():
        target, share = round(targets[s] / weight, 4), round(images[s] * r / effective_total, 4)
        concepts[f"{r}_{trigger_word}_{s}"] = {
            "strategy": s, "repeats": r, "wanted_repeats": wanted[s], "images": images[s], "target": target,
            "effective_share": share,
            # How far the cap leaves the strategy below its target share (0 when it does not bind).
            "shortfall": round(max(0.0, target - share), 4) if wanted[s] > cap else 0.0,
        }
    return concepts


def concept_of(concepts: dict[str, dict], strategy: str) -> str:
    """The folder a record of ``strategy`` goes to."""
    return next(name for name, c in concepts.items() if c["strategy"] in (None, strategy))


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def kohya_dataset_toml(training_dir: str, concepts: dict[str, dict], resolution: int) -> str:
    """sd-scripts dataset config: one subset per concept folder, captions from the .txt beside each image."""
    root = Path(training_dir).resolve()
    lines = [
        "# frameloom: kohya sd-scripts dataset config (train_network.py --dataset_config THIS_FILE)",
        "# num_repeats per folder: see processing_report.json summary.repeats.",
        "[general]",
        'caption_extension = ".txt"',
        "shuffle_caption = false",
        "keep_tokens = 1  # the trigger word stays first",
        "flip_aug = false  # no flips: a 3D character's asymmetries are part of it",
        "color_aug = false  # no hue shifts",
        "",
        "[[datasets]]",
        f"resolution = {resolution}",
        "batch_size = 1",
        "enable_bucket = true",
    ]
    for name, concept in concepts.items():
        lines += ["", "  [[datasets.subsets]]", f"  image_dir = {_toml_string(str(root / name))}",
                  f"  num_repeats = {concept['repeats']}"]
    return "\n".join(lines) + "\n"


def onetrainer_concepts(training_dir: str, concepts: dict[str, dict]) -> list[dict]:
    """OneTrainer concepts: repeats as REPEATS balancing, prompts from the .txt files, flips and
    colour jitter off (OneTrainer's default random flip would mirror the character)."""
    root = Path(training_dir).resolve()
    image = {"enable_crop_jitter": True, "enable_random_flip": False, "enable_fixed_flip": False,
             "enable_random_rotate": False, "enable_fixed_rotate": False, "random_rotate_max_angle": 0.0}
    for jitter in ("brightness", "contrast", "saturation", "hue"):
        image |= {f"enable_random_{jitter}": False, f"enable_fixed_{jitter}": False,
                  f"random_{jitter}_max_strength": 0.0}
    return [
        {
            "__version": 1, "name": name, "path": str(root / name),
            # A fixed seed per concept keeps the file deterministic.
            "seed": zlib.crc32(name.encode()) % (1 << 30),
            "enabled": True, "validation_concept": False, "include_subdirectories": False,
            "image_variations": 1, "text_variations": 1,
            "balancing": float(concept["repeats"]), "balancing_strategy": "REPEATS", "loss_weight": 1.0,
            "image": image,
            "text": {"prompt_source": "sample", "prompt_path": "", "enable_tag_shuffling": False,
                     "tag_delimiter": ",", "keep_tags_count": 1},
        }
        for name, concept in concepts.items()
    ]
