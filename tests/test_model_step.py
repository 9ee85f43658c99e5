"""Batched model steps: one model build per job, content-addressed cache, exports, strict mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frameloom import layout
from frameloom.analysis import analyze_file
from frameloom.backends import missing_models, model_requirements
from frameloom.config import ConfigError, load_run_config
from frameloom.demo import FrameSpec, render_frame
from frameloom.imageio import read_json, write_image, write_json
from frameloom.model_step import export_frame, run_batch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def batch(tmp_path):
    run = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models")}, tmp_path, workflow_dir=REPO)
    members = {}
    for i in range(3):
        frame = f"f{i}"
        image, _ = render_frame(FrameSpec(seed=40 + i, width=256, height=144))
        write_image(tmp_path / f"{frame}.png", image)
        write_json(tmp_path / f"{frame}.json", analyze_file(tmp_path / f"{frame}.png", frame, f"{frame}.png"))
        members[frame] = [str(tmp_path / f"{frame}.png"), str(tmp_path / f"{frame}.json")]
    out = str(tmp_path / "results")
    return {
        "run": run, "members": members, "tmp": tmp_path, "out": out,
        "outputs": layout.strategy_outputs(out, "segment", run.strategy_cfg("segment")),
        "settings": run.strategy_settings("", "segment"),
    }


def run(batch, log="batch.log", attempt=1, attempts=1):
    return run_batch("segment", batch["members"], batch["settings"], batch["outputs"],
                     str(batch["tmp"] / "cache"), str(batch["tmp"] / "manifest.json"), str(batch["tmp"] / log),
                     attempt, attempts)


def test_models_are_built_once_per_batch_and_cached(batch):
    run(batch)
    log = (batch["tmp"] / "batch.log").read_text()
    assert "frames: 3 (computed 3, from cache 0, failed 0)" in log
    # One segmenter and one inpainter for the whole batch, named as fallbacks (no weights here).
    assert "grabcut (fallback: sam2_hiera_large weights missing:" in log and log.count(" x1") == 2
    run(batch, "again.log")
    assert "frames: 3 (computed 0, from cache 3, failed 0)" in (batch["tmp"] / "again.log").read_text()
    assert "model loads: none" in (batch["tmp"] / "again.log").read_text()


def test_changing_one_frame_recomputes_only_it(batch):
    run(batch)
    first = read_json(batch["tmp"] / "manifest.json")["frames"]
    analysis = read_json(batch["members"]["f1"][1])
    analysis["foreground_box"] = None
    write_json(batch["members"]["f1"][1], analysis)
    run(batch, "again.log")
    second = read_json(batch["tmp"] / "manifest.json")["frames"]
    assert "computed 1, from cache 2" in (batch["tmp"] / "again.log").read_text()
    assert [f for f in first if first[f] != second[f]] == ["f1"]


def test_export_links_cached_files_with_final_paths(batch):
    run(batch)
    outputs = {name: pattern.format(frame="f0") for name, pattern in batch["outputs"].items()}
    export_frame("f0", str(batch["tmp"] / "manifest.json"), str(batch["tmp"] / "cache"), outputs,
                 batch["members"]["f0"][0])
    meta = read_json(outputs["meta"])
    assert {entry["image"] for entry in meta["outputs"]} == {outputs["character"], outputs["background"],
                                                             outputs["composite"]}
    assert all(Path(path).is_file() for path in outputs.values())
    manifest = read_json(batch["tmp"] / "manifest.json")
    cached = batch["tmp"] / "cache" / "segment" / manifest["frames"]["f0"] / "character.png"
    assert Path(outputs["character"]).stat().st_ino == cached.stat().st_ino


def test_cache_entries_without_linked_outputs_are_pruned(batch):
    from frameloom.merge import prune_cache

    run(batch)
    outputs = {name: pattern.format(frame="f0") for name, pattern in batch["outputs"].items()}
    export_frame("f0", str(batch["tmp"] / "manifest.json"), str(batch["tmp"] / "cache"), outputs,
                 batch["members"]["f0"][0])
    removed = prune_cache(str(batch["tmp"] / "cache"))
    keys = read_json(batch["tmp"] / "manifest.json")["frames"]
    assert sorted(Path(p).name for p in removed) == sorted([keys["f1"], keys["f2"]])
    assert (batch["tmp"] / "cache" / "segment" / keys["f0"] / "meta.json").is_file()


def test_a_transient_failure_fails_the_try_then_the_retry_recomputes_only_that_frame(batch, monkeypatch):
    from frameloom import strategies
    from frameloom.model_step import BatchFrameFailures

    real = strategies.EXECUTORS["segment"]
    calls = []

    def out_of_memory_once(frame_path, *args):
        calls.append(Path(frame_path).stem)
        if Path(frame_path).stem == "f1" and calls.count("f1") == 1:
            raise MemoryError("simulated: cannot allocate 9 GiB")
        return real(frame_path, *args)

    monkeypatch.setitem(strategies.EXECUTORS, "segment", out_of_memory_once)
    with pytest.raises(BatchFrameFailures, match="1 frame\\(s\\) failed, retrying: f1"):
        run(batch, attempt=1, attempts=2)
    log = (batch["tmp"] / "batch.log").read_text()
    assert "f1 failed on attempt 1 of 2" in log and "MemoryError: simulated" in log
    assert not (batch["tmp"] / "manifest.json").exists()
    run(batch, "retry.log", attempt=2, attempts=2)
    assert "computed 1, from cache 2, failed 0" in (batch["tmp"] / "retry.log").read_text()
    assert calls == ["f0", "f1", "f2", "f1"]
    assert read_json(batch["tmp"] / "manifest.json")["failed"] == {}


def test_a_frame_failing_on_the_last_try_is_reported_and_its_batch_mates_go_on(batch):
    # The frame file broke after its analysis: the model step cannot decode it.
    Path(batch["members"]["f1"][0]).write_text("no longer an image")
    run(batch, attempt=2, attempts=2)
    manifest = read_json(batch["tmp"] / "manifest.json")
    assert manifest["failed"] == {"f1": "FrameDecodeError: not a decodable image: f1.png"}
    assert sorted(manifest["frames"]) == ["f0", "f2"]
    for frame in ("f0", "f1", "f2"):
        outputs = {name: pattern.format(frame=frame) for name, pattern in batch["outputs"].items()}
        export_frame(frame, str(batch["tmp"] / "manifest.json"), str(batch["tmp"] / "cache"), outputs,
                     batch["members"][frame][0])
        meta = read_json(outputs["meta"])
        assert all(Path(path).is_file() for path in outputs.values())
        if frame == "f1":
            assert meta["error"] == "ModelStepError: FrameDecodeError: not a decodable image: f1.png"
            assert not any(entry["train"] for entry in meta["outputs"])
            assert {e["backend"] for e in meta["outputs"]} == {"placeholder (model step failed)"}
        else:
            assert meta["error"] is None or meta["error"].startswith("NoCharacterFound")


def test_model_requirements_and_strict_mode(tmp_path):
    models = tmp_path / "models"
    segment_cfg = {"segmentation_model": "sam2_hiera_tiny", "inpainting_model": "lama"}
    required = model_requirements(segment_cfg, {"lama": "inpainting/big-lama.pt"}, models)
    assert required["segmentation"]["path"] == str(models / "segmentation" / "sam2_hiera_tiny.pt")
    assert not required["inpainting"]["present"]
    assert missing_models(required)[0] == (
        f"sam2_hiera_tiny weights missing: {models / 'segmentation' / 'sam2_hiera_tiny.pt'} "
        "(download: python -m frameloom.download --models sam2_hiera_tiny)")
    assert model_requirements({"segmentation_model": "grabcut", "inpainting_model": "opencv"}, {}, models) == {}
    with pytest.raises(ConfigError, match=r"^config/config.yaml: strict_models: sam2_hiera_large weights missing: .*"
                                          r"\(download: python -m frameloom.download --models sam2_hiera_large\)$"):
        load_run_config({"input_dir": "demo", "strict_models": True, "models_dir": str(models)}, tmp_path,
                        workflow_dir=REPO)
    json.dumps(required)


def test_reference_images_choose_the_target_or_report_no_match(tmp_path):
    from frameloom.demo import render_reference

    write_image(tmp_path / "refs" / "target.png", render_reference(2, size=256))
    run = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models"),
                           "character": {"reference_images": [str(tmp_path / "refs")]}}, tmp_path, workflow_dir=REPO)
    members, truths = {}, {}
    for frame, identities in (("with_target", (0, 2)), ("without_target", (0, 3))):
        image, truths[frame] = render_frame(FrameSpec(seed=5, width=480, height=270, n_characters=2,
                                                      shot="full-body", identities=identities))
        write_image(tmp_path / f"{frame}.png", image)
        write_json(tmp_path / f"{frame}.json", analyze_file(tmp_path / f"{frame}.png", frame, f"{frame}.png"))
        members[frame] = [str(tmp_path / f"{frame}.png"), str(tmp_path / f"{frame}.json")]
    out = str(tmp_path / "results")
    run_batch("segment", members, run.strategy_settings("", "segment"),
              layout.strategy_outputs(out, "segment", run.strategy_cfg("segment")),
              str(tmp_path / "cache"), str(tmp_path / "manifest.json"), str(tmp_path / "batch.log"))
    manifest = read_json(tmp_path / "manifest.json")["frames"]
    found = read_json(tmp_path / "cache" / "segment" / manifest["with_target"] / "meta.json")
    assert found["error"] is None and "matches the references" in found["segmentation"]["notes"]
    assert found["segmentation"]["target_score"] >= 0.73
    # The cut-out is the identity-2 character: its crop centre lies in that character's true box.
    x, y, w, h = found["segmentation"]["crop_box"]
    bx, by, bw, bh = truths["with_target"]["boxes"][1]
    assert bx <= x + w / 2 <= bx + bw and by <= y + h / 2 <= by + bh
    missing = read_json(tmp_path / "cache" / "segment" / manifest["without_target"] / "meta.json")
    assert missing["error"].startswith("NoCharacterMatch: no instance matches the references")
    assert not any(entry["train"] for entry in missing["outputs"])


def test_enhance_batch_uses_real_esrgan_when_its_weights_are_present(tmp_path, real_models_dir):
    import importlib.util

    if importlib.util.find_spec("realesrgan") is None:
        pytest.skip("realesrgan not installed (scripts/install.sh --models)")
    weights = real_models_dir / "enhancement" / "realesr-animevideov3.pth"
    if not weights.is_file():
        pytest.skip(f"no Real-ESRGAN weights at {weights}")
    models = tmp_path / "models"
    (models / "enhancement").mkdir(parents=True)
    (models / "enhancement" / weights.name).symlink_to(weights)
    strategy = tmp_path / "strategies.yaml"
    strategy.write_text("strategies:\n  enhance_segment:\n    upscale_model: realesr-animevideov3\n"
                        "    enhancement_steps: [upscale, sharpen]\n")
    run = load_run_config({"input_dir": "demo", "models_dir": str(models), "strategy_configs": str(strategy)},
                          tmp_path, workflow_dir=REPO)
    image, _ = render_frame(FrameSpec(seed=8, width=160, height=90, shot="close-up"))
    write_image(tmp_path / "small.png", image)
    write_json(tmp_path / "small.json", analyze_file(tmp_path / "small.png", "small", "small.png"))
    out = str(tmp_path / "results")
    run_batch("enhance_segment", {"small": [str(tmp_path / "small.png"), str(tmp_path / "small.json")]},
              run.strategy_settings("", "enhance_segment"),
              layout.strategy_outputs(out, "enhance_segment", run.strategy_cfg("enhance_segment")),
              str(tmp_path / "cache"), str(tmp_path / "manifest.json"), str(tmp_path / "batch.log"))
    assert "realesrgan:realesr-animevideov3 x1" in (tmp_path / "batch.log").read_text()
    key = read_json(tmp_path / "manifest.json")["frames"]["small"]
    meta = read_json(tmp_path / "cache" / "enhance_segment" / key / "meta.json")
    upscale = next(step for step in meta["steps"] if step["step"] == "upscale")
    assert upscale["applied"] and upscale["backend"] == "realesrgan:realesr-animevideov3"
    character = read_json(tmp_path / "small.json")["foreground_box"]
    assert upscale["reason"] == f"character {max(character[2:])} px < 512 px: x2 to 320x180"
    # Where the model ran is in the frame's meta and the job log, with why the CPU when it is
    # the CPU although device is auto (no NVIDIA driver on this machine).
    where = meta["devices"]["realesrgan:realesr-animevideov3"]
    import torch

    assert where["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert where["precision"] == ("float16" if torch.cuda.is_available() else "float32")
    log = (tmp_path / "batch.log").read_text()
    assert f"realesrgan:realesr-animevideov3 ran on {where['device']} ({where['precision']})" in log
    if not torch.cuda.is_available():
        assert where["cpu_because"].startswith("torch ") and "the GPU is not usable" in log


@pytest.mark.parametrize("model,expected", [
    ("CodeFormer", ("codeformer", {"max_drift": 0.35, "batch_size": 3, "fidelity": 0.7})),
    ("GFPGAN", ("gfpgan", {"max_drift": 0.35, "batch_size": 3})),
])
def test_face_restorer_is_built_once_from_the_configured_model(tmp_path, monkeypatch, model, expected):
    pytest.importorskip("torch")
    from frameloom import face_restore
    from frameloom.backends import Backends

    built = []

    class Restorer:
        name, device, precision = model.lower(), "cpu", "float32"

    monkeypatch.setattr(face_restore, "load_face_restorer",
                        lambda backend, path, device, **options: built.append((backend, path, options)) or Restorer())
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"stand-in")
    requirement = {"face_enhance": {"name": model, "path": str(weights), "present": True}}
    enhance_cfg = {"identity_max_drift": 0.35, "face_enhance_fidelity": 0.7}
    backends = Backends({"min_instance_size": 64}, requirement, "cpu", enhance_cfg=enhance_cfg, batch_size=3)
    assert backends.face_restorer()[1] == model.lower()
    backends.face_restorer()
    assert built == [(expected[0], str(weights), expected[1])]
    assert backends.loads == {model.lower(): 1}
    assert backends.devices == {model.lower(): {"device": "cpu", "precision": "float32", "cpu_because": None}}


def test_batches_are_cut_by_the_frames_so_a_replanned_frame_moves_its_own_batch_only():
    from frameloom.layout import content_batches

    frames = [f"shot{i // 40:02d}_frame_{i:05d}" for i in range(2000)]
    batches = content_batches(frames, 8)
    assert [f for members in batches.values() for f in members] == sorted(frames)
    sizes = [len(members) for members in batches.values()]
    assert max(sizes) <= 32 and 6 <= sum(sizes) / len(sizes) <= 10
    assert content_batches(reversed(frames), 8) == batches  # order of the input does not matter
    members = {frame: batch for batch, group in batches.items() for frame in group}
    touched = []
    for removed in frames[::7]:
        after = content_batches([f for f in frames if f != removed], 8)
        # Batch ids that are new, gone or hold other frames (a renamed batch counts twice).
        changed = {batch for batch, group in after.items() if batches.get(batch) != group}
        changed |= {batch for batch in batches if batch not in after}
        assert members[removed] in changed and len(changed) <= 5
        touched.append(len(changed))
    # Mostly its own batch alone; positional batches of 8 would move every later one (~140 here).
    assert sum(n <= 3 for n in touched) >= 0.95 * len(touched) and sum(n == 1 for n in touched) >= 0.7 * len(touched)
    assert list(content_batches(["a", "b", "c"], 1).values()) == [["a"], ["b"], ["c"]]
