"""frameloom against the tools a user would pick instead, on the same generated frames, side by side.

- Image-quality checks: CleanVision (``cleanvision.Imagelab``, its dark / blurry /
  light / low_information checks) against frameloom's analysis. Throughput
  (frames per second, one process each, both on the same files) and the
  agreement of each with the planted truth: frames rendered dark
  (``darkness``) or blurred (``blur_sigma``), beside clean ones.
- Near-duplicates: imagededup's PHash (``find_duplicates``, its default
  distance 10) against frameloom's dedup (pHash distance 8 AND SSIM >= 0.95),
  on clean frames plus planted copies (re-encoded JPEG, 2 % rescale, +8
  brightness). Time, planted pairs found, and pairs that are not planted.

frameloom calls a frame dark when ``brightness_mean`` < 0.25 and blurry when
``sharpness`` < the decision threshold ``low_sharpness`` (0.4).

    .venv/bin/pip install cleanvision==0.3.7 imagededup==0.3.3.post2   # or: pip install -e .[bench]
    .venv/bin/python bench/peers.py --frames 60
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from frameloom.analysis import analyze_file  # noqa: E402
from frameloom.dedup import near_duplicate_groups, phash, ssim_thumbnail  # noqa: E402
from frameloom.demo import FrameSpec, demo_specs, render_frame  # noqa: E402
from frameloom.imageio import read_image  # noqa: E402

DARK_BRIGHTNESS, LOW_SHARPNESS = 0.25, 0.4


def quality_set(folder: Path, count: int) -> dict[str, set[str]]:
    """count clean frames, count dark, count blurry: {label: file names}."""
    truth = {"clean": set(), "dark": set(), "blurry": set()}
    for index, spec in enumerate(demo_specs(count)):
        for label, change in (("clean", {}), ("dark", {"darkness": 0.75}), ("blurry", {"blur_sigma": 4.0})):
            image, _ = render_frame(FrameSpec(**{**spec.__dict__, **change}))
            name = f"{label}_{index:03d}.png"
            cv2.imwrite(str(folder / name), image)
            truth[label].add(name)
    return truth


def score(called: set[str], truth: set[str]) -> str:
    hits = len(called & truth)
    precision = hits / len(called) if called else 1.0
    return f"recall {hits / len(truth):.2f}, precision {precision:.2f}"


def run_ours(folder: Path, models_dir: Path) -> tuple[float, dict[str, set[str]]]:
    started = time.perf_counter()
    calls = {"dark": set(), "blurry": set()}
    for path in sorted(folder.glob("*.png")):
        record = analyze_file(path, path.stem, path.name, models_dir=models_dir)
        if record["brightness_mean"] < DARK_BRIGHTNESS:
            calls["dark"].add(path.name)
        if record["sharpness"] < LOW_SHARPNESS:
            calls["blurry"].add(path.name)
    return time.perf_counter() - started, calls


def run_cleanvision(folder: Path) -> tuple[float, dict[str, set[str]]]:
    from cleanvision import Imagelab

    started = time.perf_counter()
    # CleanVision prints a progress bar to stderr and a summary to stdout.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab = Imagelab(data_path=str(folder), verbose=False)
        lab.find_issues({"dark": {}, "blurry": {}, "light": {}, "low_information": {}}, n_jobs=1, verbose=False)
    elapsed = time.perf_counter() - started
    issues = lab.issues
    calls = {kind: {Path(p).name for p in issues.index[issues[f"is_{kind}_issue"]]} for kind in ("dark", "blurry")}
    return elapsed, calls


def duplicate_set(folder: Path, count: int) -> set[frozenset[str]]:
    """count clean frames and, for a third of them, one planted near-copy each: the planted pairs."""
    planted = set()
    for index, spec in enumerate(demo_specs(count)):
        image, _ = render_frame(spec)
        name = f"frame_{index:03d}.png"
        cv2.imwrite(str(folder / name), image)
        if index % 3:
            continue
        kind = ("jpeg", "rescaled", "brighter")[(index // 3) % 3]
        if kind == "jpeg":
            copy = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
        elif kind == "rescaled":
            small = cv2.resize(image, None, fx=0.98, fy=0.98, interpolation=cv2.INTER_AREA)
            copy = cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        else:
            copy = cv2.add(image, np.full_like(image, 8))
        copy_name = f"frame_{index:03d}_{kind}.png"
        cv2.imwrite(str(folder / copy_name), copy)
        planted.add(frozenset((name, copy_name)))
    return planted


def pairs_of(groups) -> set[frozenset[str]]:
    return {frozenset(pair) for group in groups for pair in combinations(sorted(group), 2)}


def run_our_dedup(folder: Path) -> tuple[float, set[frozenset[str]]]:
    started = time.perf_counter()
    images = {path.name: read_image(path) for path in sorted(folder.glob("*.png"))}
    hashes = {name: phash(image) for name, image in images.items()}
    groups = near_duplicate_groups(hashes, lambda name: ssim_thumbnail(images[name]))
    return time.perf_counter() - started, pairs_of(groups)


def run_imagededup(folder: Path) -> tuple[float, set[frozenset[str]]]:
    from imagededup.methods import PHash

    logging.disable(logging.INFO)  # imagededup logs every phase at INFO through its own handler
    started = time.perf_counter()
    try:
        duplicates = PHash(verbose=False).find_duplicates(image_dir=folder, num_enc_workers=1, num_dist_workers=1)
    finally:
        logging.disable(logging.NOTSET)
    elapsed = time.perf_counter() - started
    return elapsed, {frozenset((a, b)) for a, found in duplicates.items() for b in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="clean frames per set")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models_dir = REPO.parent / "shared" / "models"
    with tempfile.TemporaryDirectory() as tmp:
        quality = Path(tmp, "quality")
        quality.mkdir()
        truth = quality_set(quality, args.frames)
        total = sum(len(names) for names in truth.values())
        ours_s, ours = run_ours(quality, models_dir)
        peer_s, peer = run_cleanvision(quality)
        print(f"quality checks on {total} 640x360 frames ({args.frames} clean, dark, blurry each)")
        print(f"  frameloom analysis  {total / ours_s:6.1f} frames/s   dark: {score(ours['dark'], truth['dark'])};"
              f" blurry: {score(ours['blurry'], truth['blurry'])}")
        print(f"  CleanVision         {total / peer_s:6.1f} frames/s   dark: {score(peer['dark'], truth['dark'])};"
              f" blurry: {score(peer['blurry'], truth['blurry'])}")
        print(f"  throughput ratio frameloom / CleanVision: {peer_s / ours_s:.2f} (frameloom also measures "
              "complexity, occlusion, faces, instances and shot type)")
        for kind in ("dark", "blurry"):
            both = len(ours[kind] & peer[kind])
            either = len(ours[kind] | peer[kind]) or 1
            print(f"  agreement on {kind}: {both}/{either} frames called by either are called by both")

        duplicates = Path(tmp, "duplicates")
        duplicates.mkdir()
        planted = duplicate_set(duplicates, args.frames)
        files = len(list(duplicates.glob("*.png")))
        print(f"\nnear-duplicates among {files} frames ({len(planted)} planted pairs)")
        for name, run in (("frameloom dedup", run_our_dedup), ("imagededup PHash", run_imagededup)):
            elapsed, found = run(duplicates)
            print(f"  {name:<17} {elapsed:6.2f} s   planted found {len(found & planted)}/{len(planted)}, "
                  f"other pairs {len(found - planted)}")


if __name__ == "__main__":
    main()
