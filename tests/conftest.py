"""Shared fixtures: where the optional real data lives, and skip reasons."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`../shared` beside the checkout (CI), or FRAMELOOM_SHARED_DIR."""
    return Path(os.environ.get("FRAMELOOM_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def sintel_frames_dir() -> Path:
    frames = shared_dir() / "data" / "frames"
    if not frames.is_dir() or not any(frames.glob("*.png")):
        pytest.skip(f"real Sintel frames not present at {frames}")
    return frames


@pytest.fixture(scope="session")
def real_models_dir() -> Path:
    models = Path(os.environ.get("FRAMELOOM_MODELS_DIR", shared_dir() / "models"))
    if not models.is_dir():
        pytest.skip(f"real model weights not present at {models}")
    return models


@pytest.fixture(scope="session")
def tiny_qwen_vl(tmp_path_factory):
    """``{model_type: folder}``: random-weight Qwen2-VL and Qwen2.5-VL checkpoints, saved once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from model_builders import save_tiny_qwen2_vl

    root = tmp_path_factory.mktemp("vlm")
    return {kind: save_tiny_qwen2_vl(root / kind, kind) for kind in ("qwen2_vl", "qwen2_5_vl")}
