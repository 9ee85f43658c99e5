"""Weights are loaded without running code from them: a checkpoint that carries a pickled call is refused.

torch >= 2.6 loads with weights_only=True by default; frameloom's own loads say
so explicitly, and the libraries it calls (Real-ESRGAN, facexlib, sam2) use the
default. A TorchScript file (big-lama.pt) is code by format: it cannot be
loaded weights-only, so only use LaMa weights from a source you trust.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


class Payload:
    """Pickles as a call to os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def hostile(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "weights.pth"
    torch.save({"params_ema": Payload(marker), "params": Payload(marker), "model": Payload(marker)}, path)
    return path, marker


def test_real_esrgan_refuses_a_checkpoint_with_code(hostile):
    from frameloom.esrgan_backend import RealESRGANUpscaler

    path, marker = hostile
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|global"):
        RealESRGANUpscaler("RealESRGAN_x4plus_anime_6B", path, device="cpu")
    assert not marker.exists()


def test_codeformer_refuses_a_checkpoint_with_code(hostile):
    from frameloom.face_restore import FaceRestoreError, load_face_restorer

    path, marker = hostile
    with pytest.raises(FaceRestoreError):
        load_face_restorer("codeformer", path, device="cpu")
    assert not marker.exists()


def test_sam2_refuses_a_checkpoint_with_code(hostile):
    pytest.importorskip("sam2")
    from frameloom.sam2_backend import SAM2Segmenter

    path, marker = hostile
    with pytest.raises(Exception, match="(?i)weights.only|unpickl|global"):
        SAM2Segmenter("sam2_hiera_tiny", path, device="cpu")
    assert not marker.exists()
