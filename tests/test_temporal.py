"""Temporal context expansion: neighbours of curated frames, the seed's arithmetic, near-duplicates dropped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from frameloom.discovery import discover_frames
from frameloom.temporal import expand, match_curated, natural_key


def write_sequence(folder: Path, count: int, static: range = range(0), size: int = 48, seed: int = 0) -> None:
    """frame_0 ... frame_{count-1}: distinct random frames, identical over ``static``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    still = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for number in range(count):
        image = still if number in static else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame_{number}.png"), image)


def frames_of(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): frame for frame, path in discover_frames(root).items()}


def test_natural_order_and_matching_by_name():
    assert sorted(["frame_10", "frame_9", "Frame_1"], key=natural_key) == ["Frame_1", "frame_9", "frame_10"]
    frames = {"a/x.png": "a__x", "a/y.png": "a__y", "b/y.png": "b__y"}
    matched, unmatched = match_curated(["1_luca/x.png", "a/y.png", "y.png", "z.png"], frames)
    assert matched == {"1_luca/x.png": "a/x.png", "a/y.png": "a/y.png"}
    assert unmatched == ["y.png", "z.png"]  # y.png is ambiguous, z.png absent


def test_the_seeds_numbers_372_curated_give_2604(tmp_path):
    write_sequence(tmp_path / "frames", 3720, size=16)
    curated = [f"1_luca/frame_{10 * i + 5}.png" for i in range(372)]
    result = expand(curated, frames_of(tmp_path / "frames"), tmp_path / "frames", 3, 8, 0.95)
    assert (result["matched"], result["added"], len(result["selected"])) == (372, 2232, 2604)
    assert result["dropped"] == {} and result["unmatched"] == []


def test_near_duplicate_neighbours_are_dropped_and_windows_stay_in_their_folder(tmp_path):
    write_sequence(tmp_path / "frames" / "shot1", 30, static=range(20, 26))
    write_sequence(tmp_path / "frames" / "shot2", 5, seed=1)
    result = expand(["shot1/frame_5.png", "shot1/frame_22.png", "shot2/frame_0.png"],
                    frames_of(tmp_path / "frames"), tmp_path / "frames", 3, 8, 0.95)
    selected = set(result["selected"])
    assert {f"shot1__frame_{n}" for n in range(2, 9)} <= selected
    # frame_22 sits in a held shot: its identical neighbours add nothing.
    assert {"shot1__frame_19", "shot1__frame_22"} <= selected
    assert {f"shot1__frame_{n}" for n in (20, 21, 23, 24, 25)} == set(result["dropped"])
    assert result["dropped"]["shot1__frame_21"] == "near-duplicate of shot1__frame_22"
    # shot2's window is cut at the start of its folder and never reaches shot1.
    assert {f for f in selected if f.startswith("shot2")} == {f"shot2__frame_{n}" for n in range(4)}
    assert len(selected) == 7 + 2 + 4


@pytest.mark.slow
def test_the_workflow_processes_curated_frames_and_neighbours_and_a_new_one_adds_only_its_window(tmp_path):
    import json
    import shutil

    from test_workflow import jobs_run, snakemake, write_config

    from frameloom.demo import write_demo_set

    write_demo_set(tmp_path / "frames", 12, seed=8, truth_dir=tmp_path / "truth")
    (tmp_path / "curated" / "1_luca").mkdir(parents=True)
    shutil.copy(tmp_path / "frames" / "demo_0002.png", tmp_path / "curated" / "1_luca")
    write_config(tmp_path, temporal_expansion={"curated_dir": "curated", "window_size": 1})
    snakemake(tmp_path)
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    assert sorted(r["frame_id"] for r in report["results"]) == ["demo_0001", "demo_0002", "demo_0003"]

    shutil.copy(tmp_path / "frames" / "demo_0009.png", tmp_path / "curated" / "1_luca")
    ran = jobs_run(snakemake(tmp_path))
    assert sorted(frame for rule, frame in ran if rule == "analyze") == ["demo_0008", "demo_0009", "demo_0010"]
    expansion = json.loads((tmp_path / "results" / "temporal_expansion.json").read_text())
    assert (expansion["curated"], expansion["added"], len(expansion["selected"])) == (2, 4, 6)


def test_expansion_settings_are_checked(tmp_path):
    from frameloom.config import load_run_config
    from frameloom.schema import ConfigError

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "frames").mkdir()
    with pytest.raises(ConfigError, match="temporal_expansion.curated_dir: needs input_dir to be the full frames"):
        load_run_config({"temporal_expansion": {"curated_dir": "frames"}}, tmp_path, workflow_dir=repo)
    with pytest.raises(ConfigError, match="temporal_expansion.curated_dir: directory does not exist: nope"):
        load_run_config({"input_dir": "frames", "temporal_expansion": {"curated_dir": "nope"}}, tmp_path,
                        workflow_dir=repo)
