"""Frame discovery: which files count, and ids that are stable, unique and shell-safe."""

from __future__ import annotations

import re

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
