"""Segment step throughput on CPU: model load time and per-frame time, side by side.

The neural backends run with random-weight stand-ins in their real formats
(SAM2 tiny through build_sam2, a TorchScript module with LaMa's signature
through simple-lama), so their time is the architecture's, not the quality's.

    .venv/bin/python bench/segment_throughput.py --frames 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from frameloom.analysis import analyze_image  # noqa: E402
from frameloom.demo import demo_specs, render_frame  # noqa: E402
from frameloom.faces import load_face_detector  # noqa: E402
from frameloom.inpainting import OpenCVInpainter  # noqa: E402
from frameloom.segmentation import GrabCutSegmenter  # noqa: E402


def timed(build, run, frames):
    started = time.perf_counter()
    backend = build()
    load = time.perf_counter() - started
    per_frame = []
    for image, hint, mask in frames:
        started = time.perf_counter()
        run(backend, image, hint, mask)
        per_frame.append(time.perf_counter() - started)
    return load, float(np.median(per_frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--points", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()

    import torch
    from model_builders import save_mean_fill_lama, save_random_sam2

    from frameloom.lama_backend import LamaInpainter
    from frameloom.sam2_backend import SAM2Segmenter

    torch.set_num_threads(2)
    detector = load_face_detector(None)
    frames = []
    for spec in demo_specs(args.frames * 4)[::4][: args.frames]:
        image, truth = render_frame(dataclasses.replace(spec, width=args.width, height=args.height))
        frames.append((image, analyze_image(image, detector), truth["masks"][truth["target_index"]]))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sam2_path = save_random_sam2(Path(tmp) / "sam2_hiera_tiny.pt")
        lama_path = save_mean_fill_lama(Path(tmp) / "big-lama.pt")
        rows.append(("segment: grabcut (classical)",) + timed(
            GrabCutSegmenter, lambda b, image, hint, mask: b.segment(image, hint), frames))
        for points in args.points:
            rows.append((f"segment: sam2_hiera_tiny, points_per_side {points}",) + timed(
                lambda: SAM2Segmenter("sam2_hiera_tiny", sam2_path, device="cpu", points_per_side=points),
                lambda b, image, hint, mask: b.segment(image, hint), frames))
        rows.append(("inpaint: opencv_ns (classical)",) + timed(
            lambda: OpenCVInpainter(method="ns"), lambda b, image, hint, mask: b.inpaint(image, mask), frames))
        rows.append(("inpaint: lama (TorchScript stand-in)",) + timed(
            lambda: LamaInpainter(lama_path, device="cpu"), lambda b, image, hint, mask: b.inpaint(image, mask),
            frames))

    print(f"{args.frames} frames {args.width}x{args.height}, CPU, torch threads 2")
    print(f"{'backend':48}{'load s':>10}{'s / frame':>12}{'frames / min':>14}")
    for name, load, per_frame in rows:
        print(f"{name:48}{load:10.2f}{per_frame:12.3f}{60 / per_frame:14.1f}")


if __name__ == "__main__":
    main()
