"""Enhancement steps on CPU: time per step at 256 and 512 px, side by side.

Real-ESRGAN runs with the real weights from ../shared/models (or
FRAMELOOM_MODELS_DIR) when present; CodeFormer with a random-weight
checkpoint in its real format (its time is the architecture's).

    .venv/bin/python bench/enhance_steps.py [--sizes 256 512] [--with-codeformer]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))  # model_builders: the test suite's random-weight checkpoints

from frameloom import enhance  # noqa: E402
from frameloom.demo import FrameSpec, render_frame  # noqa: E402


def seconds(function, repeats: int = 2) -> float:
    function()  # warm-up: first calls allocate
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--with-codeformer", action="store_true", help="adds ~20 s per face on CPU")
    args = parser.parse_args()

    models = Path(os.environ.get("FRAMELOOM_MODELS_DIR", REPO.parent / "shared" / "models"))
    cfg = {"upscale_below": 10_000, "upscale_factor": 2.0}
    columns = {}
    for size in args.sizes:
        image, truth = render_frame(FrameSpec(seed=3, width=size, height=size, shot="close-up", noise_std=12))
        analysis = {"foreground_box": truth["boxes"][0], "faces": [{"box": truth["face_boxes"][0]}]}
        row = {
            "upscale: lanczos x2": seconds(lambda: enhance._upscale(image, analysis, cfg, (None, "lanczos"))),
            "denoise: NL-means": seconds(lambda: enhance._denoise(image, enhance.estimate_noise_sigma(image), {})),
            "deblur: Richardson-Lucy": seconds(lambda: enhance._deblur(image, None, 1e9)),
            "sharpen: unsharp mask": seconds(lambda: enhance._sharpen(image, 2.0)),
        }
        for name in ("realesr-animevideov3", "RealESRGAN_x4plus_anime_6B"):
            weights = models / "enhancement" / f"{name}.pth"
            if weights.is_file():
                from frameloom.esrgan_backend import RealESRGANUpscaler

                upscaler = RealESRGANUpscaler(name, weights, device="cpu", outscale=2.0)
                row[f"upscale: {name} x2"] = seconds(lambda: upscaler.upscale(image), repeats=1)
        if args.with_codeformer:
            from model_builders import save_random_face_restorer

            from frameloom.face_restore import CodeFormerRestorer

            with tempfile.TemporaryDirectory() as tmp:
                path = save_random_face_restorer(Path(tmp) / "codeformer.pth", CodeFormerRestorer)
                restorer = CodeFormerRestorer(path, device="cpu", max_drift=1.0)
                row["face_enhance: CodeFormer (1 face)"] = seconds(
                    lambda: restorer.restore(image, [truth["face_boxes"][0]]), repeats=1)
        columns[size] = row

    names = list(dict.fromkeys(name for row in columns.values() for name in row))
    print("CPU seconds per frame (square frames, torch default threads)")
    print(f"{'step':40}" + "".join(f"{f'{size} px':>12}" for size in args.sizes)
          + (f"{'512/256':>10}" if {256, 512} <= set(args.sizes) else ""))
    for name in names:
        cells = "".join(f"{columns[size].get(name, float('nan')):12.3f}" for size in args.sizes)
        ratio = (f"{columns[512][name] / columns[256][name]:10.1f}"
                 if {256, 512} <= set(args.sizes) and name in columns[256] else "")
        print(f"{name:40}{cells}{ratio}")


if __name__ == "__main__":
    main()
