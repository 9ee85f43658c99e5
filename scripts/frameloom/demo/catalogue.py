"""The demo set: a deterministic, balanced catalogue of specs, written to a folder."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from ..imageio import read_json, write_image, write_json
from .render import render_frame
from .spec import CHARACTERS, DEMO_TARGET_IDENTITY, FrameSpec

# ----------------------------------------------------------------------------
# The demo set.

# One cycle of the demo catalogue. Shares per cycle: 7/20 clean, 6/20 cluttered
# or multi-character, 3/20 occluded or mediocre, 4/20 degraded; the first 12
# entries already cover every category.
DEMO_CYCLE = (
    "clean-close-up", "cluttered", "blurred", "clean-medium", "multi-2", "occluded-side",
    "noisy", "clean-close-up", "multi-3-cluttered", "dark", "far-cluttered", "low-res",
    "clean-medium", "side-lit", "clean-close-up", "multi-2-cluttered", "occluded-front", "clean-medium",
    "far-multi-3", "clean-medium",
)


def _demo_spec(kind: str, rng: np.random.Generator, width: int, height: int) -> FrameSpec:
    params: dict = {"shot": "medium"}
    if kind == "clean-close-up":
        params["shot"] = "close-up"
    elif kind == "cluttered":
        params.update(background="cluttered", shot=str(rng.choice(["medium", "full-body"])))
    elif kind == "blurred":
        # Soft, as enhance_segment is for: a rendered frame blurred by a sigma of 0.8 or
        # more reads as unusable blur on the scale fitted on real frames, and is gated out.
        params["blur_sigma"] = round(float(rng.uniform(0.45, 0.6)), 2)
    elif kind == "multi-2":
        params.update(n_characters=2, shot="full-body")
    elif kind == "occluded-side":
        params["occluder"] = str(rng.choice(["left", "right"]))
    elif kind == "noisy":
        params.update(shot="full-body", noise_std=round(float(rng.uniform(15, 30)), 1))
    elif kind == "multi-3-cluttered":
        params.update(n_characters=3, background="cluttered", shot="full-body")
    elif kind == "dark":
        params["darkness"] = round(float(rng.uniform(0.6, 0.8)), 2)
    elif kind == "far-cluttered":
        params.update(background="cluttered", shot="far")
    elif kind == "low-res":
        params.update(shot=str(rng.choice(["close-up", "medium"])), downscale=round(float(rng.uniform(3, 4)), 2))
    elif kind == "side-lit":
        params.update(lighting="side", darkness=round(float(rng.uniform(0.2, 0.35)), 2))
    elif kind == "multi-2-cluttered":
        params.update(n_characters=2, background="cluttered")
    elif kind == "occluded-front":
        params.update(shot="full-body", occluder=str(rng.choice(["pole", "bottom"])))
    elif kind == "far-multi-3":
        params.update(n_characters=3, shot="far")
    elif kind != "clean-medium":
        raise ValueError(f"unknown demo kind {kind!r}")
    extras = [int(i) for i in rng.permutation([i for i in range(len(CHARACTERS)) if i != DEMO_TARGET_IDENTITY])]
    count = params.get("n_characters", 1)
    identities = (DEMO_TARGET_IDENTITY, *extras[: count - 1])
    return FrameSpec(seed=int(rng.integers(0, 2**31 - 1)), width=width, height=height, identities=identities, **params)


def demo_specs(n: int, seed: int = 7, width: int = 640, height: int = 360) -> list[FrameSpec]:
    """A deterministic, balanced mix cycling through DEMO_CYCLE; demo_specs(m)[:n] == demo_specs(n)."""
    return [_demo_spec(DEMO_CYCLE[i % len(DEMO_CYCLE)], np.random.default_rng([seed, i]), width, height)
            for i in range(n)]


def demo_kind(index: int) -> str:
    """The catalogue category of the index-th demo frame."""
    return DEMO_CYCLE[index % len(DEMO_CYCLE)]


_DEMO_FRAME = re.compile(r"demo_\d{4,}\.png")
_DEMO_TRUTH = re.compile(r"demo_\d{4,}(_mask\d+\.png|\.json)")


def _same_pixels(path: Path, image: np.ndarray) -> bool:
    if not path.is_file():
        return False
    existing = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return existing is not None and existing.shape == image.shape and np.array_equal(existing, image)


def _write_image_if_changed(path: Path, image: np.ndarray) -> None:
    if not _same_pixels(path, image):
        write_image(path, image)


def _write_json_if_changed(path: Path, payload: dict) -> None:
    if path.is_file():
        try:
            if read_json(path) == payload:
                return
        except ValueError:  # corrupt or truncated: rewrite it
            pass
    write_json(path, payload)


def write_demo_set(out_dir, n: int, seed: int = 7, width: int = 640, height: int = 360, *,
                   truth_dir=None) -> list[Path]:
    """Render demo_specs(n) to out_dir/demo_0000.png ... and their truth to truth_dir.

    truth_dir defaults to out_dir/../demo_truth: it must lie outside out_dir,
    because the workflow treats every image under the frames folder as a frame.
    Each truth JSON names its mask PNGs (same folder). Unchanged files are left
    alone (mtimes kept); demo files of an earlier, larger or different set that
    are not part of this one are removed so the folder holds exactly this set.
    """
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.parent / "demo_truth"
    if truth_dir.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(f"truth_dir {truth_dir} must not be inside the frames folder {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    frames, truth_files = [], set()
    for index, spec in enumerate(demo_specs(n, seed=seed, width=width, height=height)):
        stem = f"demo_{index:04d}"
        image, truth = render_frame(spec)
        frame_path = out_dir / f"{stem}.png"
        _write_image_if_changed(frame_path, image)
        mask_names = []
        for k, mask in enumerate(truth["masks"]):
            mask_names.append(f"{stem}_mask{k}.png")
            _write_image_if_changed(truth_dir / mask_names[-1], mask.astype(np.uint8) * 255)
        record = {**truth, "masks": mask_names, "frame": frame_path.name, "kind": demo_kind(index)}
        _write_json_if_changed(truth_dir / f"{stem}.json", record)
        frames.append(frame_path)
        truth_files.update(mask_names + [f"{stem}.json"])
    keep_frames = {p.name for p in frames}
    for stale in out_dir.iterdir():
        if _DEMO_FRAME.fullmatch(stale.name) and stale.name not in keep_frames:
            stale.unlink()
    for stale in truth_dir.iterdir():
        if _DEMO_TRUTH.fullmatch(stale.name) and stale.name not in truth_files:
            stale.unlink()
    return frames
