"""Frame discovery: which files count, and ids that are stable, unique and shell-safe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from frameloom.discovery import discover_frames, frame_ids

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def touch(root, relative):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_plain_names_keep_their_stem():
    assert frame_ids(["frame_0001.png", "shot2/frame_0001.png"]) == {
        "frame_0001.png": "frame_0001",
        "shot2/frame_0001.png": "shot2__frame_0001",
    }


def test_unsafe_names_get_a_clean_unique_id():
    names = ["my frame 1.png", "été/ñandú.jpg", "it's $(rm -rf).png", "-leading.png", "a;b.webp", "a.png", "a.jpg"]
    ids = frame_ids(names)
    assert len(set(ids.values())) == len(names)
    assert all(SAFE.match(frame_id) for frame_id in ids.values())
    assert ids["my frame 1.png"].startswith("my_frame_1-")
    assert ids["a.png"] != ids["a.jpg"] and ids["a.png"].startswith("a-")
    assert frame_ids(names) == ids  # stable


def test_discovery_filters_sorts_and_limits(tmp_path):
    for name in ["b.png", "a.JPG", "c.jpeg", "d.webp", "e.bmp", "notes.txt", ".hidden.png",
                 ".cache/x.png", "sub/f.png", "video.mp4"]:
        touch(tmp_path, name)
    frames = discover_frames(tmp_path)
    assert list(frames) == ["a", "b", "c", "d", "e", "sub__f"]
    assert frames["sub__f"] == tmp_path / "sub" / "f.png"
    assert list(discover_frames(tmp_path, limit=2)) == ["a", "b"]


def test_ids_do_not_depend_on_other_files(tmp_path):
    touch(tmp_path, "x.png")
    before = discover_frames(tmp_path)["x"]
    touch(tmp_path, "y.png")
    assert discover_frames(tmp_path)["x"] == before


def test_symlinks_are_handled_deliberately(tmp_path):
    """A linked file is a frame like any other (it is only read); a linked folder is not walked
    (it may loop back, or pull in a whole other tree)."""
    frames, elsewhere = tmp_path / "frames", tmp_path / "elsewhere"
    touch(frames, "a.png")
    touch(elsewhere, "b.png")
    (frames / "b.png").symlink_to(elsewhere / "b.png")
    (frames / "loop").symlink_to(frames, target_is_directory=True)
    (frames / "other").symlink_to(elsewhere, target_is_directory=True)
    assert list(discover_frames(frames)) == ["a", "b"]


def test_output_and_input_folders_must_not_nest(tmp_path):
    from frameloom.config import load_run_config
    from frameloom.schema import ConfigError

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "frames").mkdir()
    for output, message in (("frames/results", "is inside input_dir"), ("frames", "is inside input_dir"),
                            (".", "contains input_dir")):
        with pytest.raises(ConfigError, match=f"output_dir: .*{message}"):
            load_run_config({"input_dir": "frames", "output_dir": output}, tmp_path, workflow_dir=repo)
    # A link to the input folder is seen through.
    (tmp_path / "link").symlink_to(tmp_path / "frames", target_is_directory=True)
    with pytest.raises(ConfigError, match="is inside input_dir"):
        load_run_config({"input_dir": "frames", "output_dir": "link/out"}, tmp_path, workflow_dir=repo)
    assert load_run_config({"input_dir": "frames", "output_dir": "results"}, tmp_path, workflow_dir=repo)
