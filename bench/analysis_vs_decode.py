"""Per-frame analysis time against the time to only decode the same frames (the physical floor).

Frames are demo renders (busy and plain scenes, one to four characters) written
as PNG and JPEG at 1024x436 (Sintel's aspect) and 1920x1080; with ../shared
present the real Sintel frames are measured too. Each file is decoded once
alone (frameloom's reader: header check, decode, EXIF) and once through
``analyze_file`` (decode + every metric + face detection), side by side in one
run, interleaved so that cache and clock drift hit both alike.

With --profile, each set's decoded frames are analysed again under cProfile
and the time of every step is printed (cumulative ms per frame; cProfile's
own cost inflates the Python-heavy steps a little).

    .venv/bin/python bench/analysis_vs_decode.py --frames 20 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from frameloom import analysis, cast, measures  # noqa: E402
from frameloom.analysis import analyze_file, analyze_image  # noqa: E402
from frameloom.demo import demo_specs, render_frame  # noqa: E402
from frameloom.faces import load_face_detector  # noqa: E402
from frameloom.imageio import read_image  # noqa: E402
from frameloom.measures import detail_copy  # noqa: E402

SIZES = ((1024, 436), (1920, 1080))
# The modules the analysis is written in: the profile keeps their functions only.
ANALYSIS_FILES = {analysis.__file__, cast.__file__, measures.__file__}
# The steps of analysis.analyze_image, by the function that does each.
STEPS = {
    "copies": ("detail_copy", "work_copy"),
    "faces": ("_faces_on_copy",),
    "backdrop": ("backdrop_layer",),
    "instances": ("find_cast",),
    "complexity": ("measure_complexity",),
    "lighting": ("measure_lighting",),
    "defocus": ("_defocus_layering",),
    "occlusion": ("measure_occlusion",),  # includes defocus
    "sharpness": ("measure_sharpness",),
    "noise": ("measure_noise",),
}
SHARED = Path(os.environ.get("FRAMELOOM_SHARED_DIR", REPO.parent / "shared"))


def write_frames(folder: Path, count: int, size: tuple[int, int], extension: str) -> list[Path]:
    paths = []
    for index, spec in enumerate(demo_specs(count)):
        image, _ = render_frame(spec)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        paths.append(folder / f"{size[0]}x{size[1]}_{index:03d}{extension}")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def measure(paths: list[Path], models_dir: Path) -> tuple[float, float, float]:
    """Median ms per frame: decode only, the whole analysis, and its face detection alone."""
    decode, analyse, faces = [], [], []
    analyze_file(paths[0], "warm", "warm", models_dir=models_dir)  # detector load, first-call costs
    detector = load_face_detector(models_dir)
    for path in paths:
        started = time.perf_counter()
        image = read_image(path)
        decode.append(time.perf_counter() - started)
        started = time.perf_counter()
        analyze_file(path, path.stem, path.name, models_dir=models_dir)
        analyse.append(time.perf_counter() - started)
        copy = detail_copy(image)  # the copy analyze_image hands the detector
        started = time.perf_counter()
        detector.detect(copy)
        faces.append(time.perf_counter() - started)
    return tuple(1000 * statistics.median(times) for times in (decode, analyse, faces))


def profile_steps(paths: list[Path], models_dir: Path) -> dict[str, float]:
    """Cumulative ms per frame of each step in STEPS, and of the whole analyze_image."""
    detector = load_face_detector(models_dir)
    images = [read_image(path) for path in paths]
    analyze_image(images[0], detector)
    profiler = cProfile.Profile()
    profiler.enable()
    for image in images:
        analyze_image(image, detector)
    profiler.disable()
    cumulative = {
        name: stats[3] for (filename, _, name), stats in pstats.Stats(profiler).stats.items()
        if filename in ANALYSIS_FILES
    }
    steps = {step: sum(cumulative.get(name, 0.0) for name in names) for step, names in STEPS.items()}
    steps["whole"] = cumulative["analyze_image"]
    return {step: 1000 * seconds / len(images) for step, seconds in steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per size and format")
    parser.add_argument("--profile", action="store_true", help="also print the time of every step")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core per frame, as in the workflow
    models_dir = SHARED / "models"
    faces = "real YuNet" if (models_dir / "faces" / "face_detection_yunet.onnx").is_file() else "packaged MTCNN"
    print(f"faces: {faces}; {args.frames} frames per row; median ms per frame")
    print("ratio: analysis (decode included) / decode; without faces: the same less the detector's time;")
    print("decode + faces: the floor the face detector alone sets, (decode + faces) / decode\n")
    print(f"{'set':<24} {'decode':>8} {'analysis':>9} {'faces':>6} {'ratio':>6} {'without faces':>14}"
          f" {'decode + faces':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for size in SIZES:
            for extension in (".png", ".jpg"):
                sets[f"{size[0]}x{size[1]} {extension[1:]}"] = write_frames(Path(tmp), args.frames, size, extension)
        sintel = sorted((SHARED / "data" / "frames").glob("*.png"))[: args.frames]
        if sintel:
            sets["Sintel (shared) png"] = sintel
        for name, paths in sets.items():
            decode, analyse, faces = measure(paths, models_dir)
            print(f"{name:<24} {decode:8.1f} {analyse:9.1f} {faces:6.1f} {analyse / decode:6.2f}"
                  f" {(analyse - faces) / decode:14.2f} {(decode + faces) / decode:15.2f}")
        if args.profile:
            print("\nsteps of analyze_image under cProfile, ms per frame (decode not included)\n")
            print(f"{'set':<24}" + "".join(f" {step:>10}" for step in [*STEPS, "whole"]))
            for name, paths in sets.items():
                steps = profile_steps(paths, models_dir)
                print(f"{name:<24}" + "".join(f" {steps[step]:10.2f}" for step in [*STEPS, "whole"]))


if __name__ == "__main__":
    main()
