"""Video input: sampling modes, planted cuts, static runs, sharpest frame per shot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from frameloom.demo import FrameSpec, render_frame
from frameloom.video import INDEX_FILE, VideoDecodeError, extract_frames

FPS = 24
# Shot A: frames 0-29, a busy scene panning, all blurred but frame 12; shot B: 30-69, one still image;
# shot C: 70-99, another scene panning, all blurred but frame 85.
CUTS = [30, 70]
SHARP = {0: 12, 2: 85}


def write_video(path: Path, size=(320, 180)) -> None:
    scenes = [cv2.resize(render_frame(FrameSpec(seed=seed, background="cluttered"))[0], (size[0] * 2, size[1]))
              for seed in (3, 4, 5)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    assert writer.isOpened()
    for number in range(100):
        shot = 0 if number < CUTS[0] else 1 if number < CUTS[1] else 2
        if shot == 1:
            frame = scenes[1][:, : size[0]]
        else:
            offset = (number % 30) * 4
            frame = scenes[shot][:, offset: offset + size[0]]
            if number != SHARP[shot]:
                frame = cv2.GaussianBlur(frame, (0, 0), 2.0)
        writer.write(np.ascontiguousarray(frame))
    writer.release()


def sampling(**overrides) -> dict:
    return {"mode": "per_shot", "every_n": 10, "per_second": 2.0, "cut_threshold": 0.5, "sharpest_per_shot": False,
            "min_change": 2.0, **overrides}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip one.mp4"
    write_video(path)
    return path


def test_cuts_are_found_and_each_shot_gives_its_sharpest_frame(video, tmp_path):
    index = extract_frames(video, tmp_path / "out", sampling())
    record = json.loads((tmp_path / "out" / INDEX_FILE).read_text())
    assert record["cuts"] == CUTS and record["shots"] == 3 and record["frames_decoded"] == 100
    assert [(e["frame"], e["shot"]) for e in index if e["shot"] != 1] == [(12, 0), (85, 2)]
    assert [e["shot"] for e in index] == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [e["file"] for e in index]
    assert index[0]["file"] == "clip one_t000000.500.png" and index[0]["time"] == 0.5


def test_every_n_skips_the_static_run(video, tmp_path):
    index = extract_frames(video, tmp_path / "out", sampling(mode="every_n"))
    # 30 opens the still shot; 40, 50 and 60 show nothing new.
    assert [e["frame"] for e in index] == [0, 10, 20, 30, 70, 80, 90]
    assert {e["picked"] for e in index} == {"every_n"}


def test_per_second_with_the_sharpest_of_each_shot(video, tmp_path):
    index = extract_frames(video, tmp_path / "out", sampling(mode="per_second", sharpest_per_shot=True))
    picked = {e["frame"]: e["picked"] for e in index}
    assert [n for n, why in picked.items() if why == "per_second"] == [0, 12, 24, 36, 72, 84, 96]
    # Frame 12 is already there; 85 is added; the still shot's sharpest repeats a written frame.
    assert [n for n, why in picked.items() if why == "sharpest of shot"] == [85]


def test_a_rerun_replaces_the_folder_and_bad_videos_are_named(video, tmp_path):
    extract_frames(video, tmp_path / "out", sampling(mode="every_n"))
    extract_frames(video, tmp_path / "out", sampling())
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        extract_frames(tmp_path / "broken.mp4", tmp_path / "broken", sampling())
    assert not (tmp_path / "broken").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_videos_feed_the_workflow_and_a_new_video_reruns_only_its_frames(video, tmp_path):
    import shutil

    from test_workflow import jobs_run, snakemake, write_config

    from frameloom.demo import write_demo_set

    write_demo_set(tmp_path / "frames", 2, seed=3, truth_dir=tmp_path / "truth")
    shutil.copy(video, tmp_path / "frames" / "clip one.mp4")
    write_config(tmp_path)
    snakemake(tmp_path)
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    from_video = sorted(r["frame"] for r in report["results"] if ".mp4" in r["frame"])
    # One frame per shot: the planted sharp frames of the panning shots (12 and 85 at 24 fps) and one of the still.
    assert len(from_video) == 3 and {from_video[0], from_video[2]} == {"clip one.mp4#t=0.500", "clip one.mp4#t=3.542"}
    assert report["summary"]["total_frames"] == 5
    video_ids = [r["frame_id"] for r in report["results"] if ".mp4" in r["frame"]]
    assert all(re.fullmatch(r"clip_one-[0-9a-f]{8}_t\d{6}\.\d{3}", f) for f in video_ids), video_ids
    analyses = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "analysis").iterdir()}

    shutil.copy(video, tmp_path / "frames" / "second.mp4")
    result = snakemake(tmp_path)
    ran = jobs_run(result)
    assert [rule for rule, _ in ran if rule == "extract_video"] == ["extract_video"]
    analysed = {frame for rule, frame in ran if rule == "analyze"}
    assert analysed and all(frame.startswith("second_t") for frame in analysed)
    assert all((tmp_path / "results" / "analysis" / name).stat().st_mtime_ns == mtime
               for name, mtime in analyses.items())
    assert json.loads((tmp_path / "results" / "processing_report.json").read_text())["summary"]["total_frames"] == 8


def write_crossing_video(path: Path, pan: bool, size=(320, 180)) -> None:
    """One continuous shot (a slow pan, or a still camera) that a large dark object crosses in front
    of the camera (frames 20-27, a third of a second), then a real cut to another scene at frame 60."""
    scenes = [cv2.resize(render_frame(FrameSpec(seed=seed, background="cluttered"))[0], (size[0] * 2, size[1]))
              for seed in (6, 7)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
    for number in range(90):
        scene = scenes[0] if number < 60 else scenes[1]
        offset = number if pan else 0
        frame = np.ascontiguousarray(scene[:, offset: offset + size[0]])
        if 20 <= number < 28:  # the object covers most of the frame, moving right to left
            left = size[0] - (number - 20) * 40
            frame[:, max(0, left - 260): left] = (20, 25, 30)
        writer.write(frame)
    writer.release()


def test_a_passing_object_is_no_cut(tmp_path):
    path = tmp_path / "crossing.mp4"
    write_crossing_video(path, pan=True)
    index = extract_frames(path, tmp_path / "out", sampling(cut_threshold=0.3))
    record = json.loads((tmp_path / "out" / INDEX_FILE).read_text())
    # Consecutive frames differ past the threshold where the object enters and leaves (20, 28), but
    # the picture comes back: only the real cut at 60 is one.
    assert record["cuts"] == [60] and record["shots"] == 2
    assert [e["shot"] for e in index] == [0, 1]


def test_a_shot_gives_no_near_identical_picks(tmp_path):
    """Still camera: the picks after the object left repeat the first one, not just the last written."""
    path = tmp_path / "still.mp4"
    write_crossing_video(path, pan=False)
    index = extract_frames(path, tmp_path / "out", sampling(mode="every_n", every_n=4, cut_threshold=0.3))
    frames = [e["frame"] for e in index if e["frame"] < 60]  # the shot before the real cut
    assert frames[0] == 0 and all(20 <= n < 28 for n in frames[1:]), frames
