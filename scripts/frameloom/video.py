"""Frames from video files: sampling, scene cuts, sharpest frame per shot, static runs skipped.

OpenCV decodes (its wheels bundle FFmpeg: mp4, mkv, mov, webm), one pass per
video. Every decoded frame is reduced to a small grey copy and an HSV
histogram. A cut is a change that persists: the histogram distance between
consecutive frames exceeds ``cut_threshold`` and the frames of the next
``PERSIST_SECONDS`` all stay that far from the frame before it; a car or a
character crossing the camera changes the picture and then gives it back, so
it is no cut (decisions wait that long: the pass holds that many frames).
Sampling picks frames by ``mode``:

- ``every_n``: frames 0, n, 2n ... of the video;
- ``per_second``: the frame nearest to each 1/rate seconds;
- ``per_shot``: one per shot, the sharpest (variance of the Laplacian).

With ``sharpest_per_shot`` the sharpest frame of each shot is added to the
first two modes. A pick within ``min_change`` (mean absolute grey difference,
0..255) of a frame already written from the same shot is skipped: a static
run gives one frame, and a shot gives no near-identical pair.
Files are ``{video id}_t{seconds:010.3f}.png``, so a frame id keeps the video name
and timestamp; ``frames.json`` beside them lists each with its frame number,
time, shot and why it was picked.

    python -m frameloom.video clip.mp4 --out-dir results/video_frames/clip --sampling '{...}' --stem clip --log L
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .imageio import building_folder, write_image, write_json

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi")
INDEX_FILE = "frames.json"
PROBE_WIDTH = 160  # px: the grey copy cuts, sharpness ranks and static runs are measured on
# A cut's new picture must last this long (capped at MAX_PERSIST_FRAMES frames): passing objects do not.
PERSIST_SECONDS = 0.5
MAX_PERSIST_FRAMES = 30


class VideoDecodeError(ValueError):
    """The file is not a video OpenCV can open, or holds no frame."""


@dataclass
class Probe:
    number: int
    time: float
    grey: np.ndarray
    histogram: np.ndarray
    sharpness: float


def _probe(frame: np.ndarray, number: int, fps: float) -> Probe:
    scale = PROBE_WIDTH / frame.shape[1]
    small = cv2.resize(frame, (PROBE_WIDTH, max(1, round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    cv2.normalize(histogram, histogram, 1.0, 0.0, cv2.NORM_L1)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return Probe(number, number / fps, grey, histogram, sharpness)


def cut_distance(a: Probe, b: Probe) -> float:
    """Bhattacharyya distance of the two HSV histograms: 0 same colours, 1 nothing in common."""
    return float(cv2.compareHist(a.histogram, b.histogram, cv2.HISTCMP_BHATTACHARYYA))


def _wanted(number: int, fps: float, sampling: dict) -> bool:
    if sampling["mode"] == "every_n":
        return number % sampling["every_n"] == 0
    if sampling["mode"] == "per_second":
        step = fps / sampling["per_second"]
        # The frame nearest to each k * step.
        return abs(number - round(round(number / step) * step)) < 0.5
    return False


class _Writer:
    """Writes picked frames into the staging folder as they come, skipping static repeats."""

    def __init__(self, folder: Path, stem: str, fps: float, min_change: float):
        self.folder, self.stem, self.fps, self.min_change = folder, stem, fps, min_change
        self.index: list[dict] = []
        self.shot_greys: list[np.ndarray] = []  # this shot's written frames, as probes

    def _static(self, grey: np.ndarray, against: list[np.ndarray]) -> bool:
        return any(np.abs(grey - other).mean() < self.min_change for other in against)

    def write(self, frame: np.ndarray, probe: Probe, shot: int, why: str) -> None:
        grey = probe.grey.astype(np.int16)
        if self._static(grey, self.shot_greys):
            return  # nothing new since a frame already written from this shot
        name = f"{self.stem}_t{probe.time:010.3f}.png"
        write_image(self.folder / name, frame)
        self.index.append({"file": name, "frame": probe.number, "time": round(probe.time, 3), "shot": shot,
                           "picked": why})
        self.shot_greys.append(grey)


def extract_frames(video_path: str | Path, out_dir: str | Path, sampling: dict, stem: str | None = None) -> list[dict]:
    """Write the sampled frames of one video to ``out_dir`` (replaced whole, atomically) with frames.json;
    returns the index entries. ``sampling``: mode, every_n, per_second, cut_threshold,
    sharpest_per_shot, min_change; ``stem`` starts each file name (default: the video's).
    Memory holds the frames of the persistence window and the sharpest of the shot so far."""
    video_path = Path(video_path)
    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise VideoDecodeError(f"cannot open video: {video_path.name}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    if not 0 < fps < 1000:
        fps = 25.0  # a container without a rate: timestamps assume 25 fps
    want_best = sampling["mode"] == "per_shot" or sampling["sharpest_per_shot"]
    lookahead = min(MAX_PERSIST_FRAMES, max(1, round(PERSIST_SECONDS * fps)))
    threshold = sampling["cut_threshold"]
    with building_folder(out_dir) as staging:
        writer = _Writer(staging, stem or video_path.stem, fps, sampling["min_change"])
        state = {"shot": 0, "previous": None, "best": None, "best_frame": None}
        cuts: list[int] = []

        def close_shot() -> None:
            best = state["best"]
            if want_best and best is not None and all(e["frame"] != best.number for e in writer.index):
                writer.write(state["best_frame"], best, state["shot"], "sharpest of shot")
            writer.shot_greys.clear()

        def settle(frame: np.ndarray, probe: Probe, ahead: list[Probe]) -> None:
            """Place one frame, the frames after it known: a cut only where the change lasts."""
            previous = state["previous"]
            if previous is not None and cut_distance(previous, probe) > threshold \
                    and all(cut_distance(previous, later) > threshold for later in ahead):
                close_shot()
                state["shot"], state["best"] = state["shot"] + 1, None
                cuts.append(probe.number)
            if state["best"] is None or probe.sharpness > state["best"].sharpness:
                state["best"], state["best_frame"] = probe, frame
            if _wanted(probe.number, fps, sampling):
                writer.write(frame, probe, state["shot"], sampling["mode"])
            state["previous"] = probe

        pending: deque[tuple[np.ndarray, Probe]] = deque()
        number = -1
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            number += 1
            pending.append((frame, _probe(frame, number, fps)))
            if len(pending) > lookahead:
                settle(*pending.popleft(), [probe for _, probe in pending])
        while pending:
            settle(*pending.popleft(), [probe for _, probe in pending])
        capture.release()
        if number < 0:
            raise VideoDecodeError(f"no frame could be decoded: {video_path.name}")
        close_shot()
        index = sorted(writer.index, key=lambda entry: entry["frame"])
        write_json(staging / INDEX_FILE, {"video": video_path.name, "fps": fps, "frames_decoded": number + 1,
                                          "shots": len(cuts) + 1, "cuts": cuts, "extracted": index})
    return index


def main(argv: list[str] | None = None) -> int:
    from .joblog import job_log

    parser = argparse.ArgumentParser(prog="python -m frameloom.video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--sampling", required=True, help="JSON: the config's video section")
    parser.add_argument("--stem", help="file name prefix of the frames (the workflow passes the video id)")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    with job_log(args.log, "extract") as lines:
        index = extract_frames(args.video, args.out_dir, json.loads(args.sampling), args.stem)
        lines.append(f"{args.video}: {len(index)} frames extracted to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
