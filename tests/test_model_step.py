"""Batched model steps: one model build per job, content-addressed cache, exports, strict mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from frameloom import layout
from frameloom.analysis import analyze_file
from frameloom.backends import missing_models, model_requirements
from frameloom.config import load_run_config
from frameloom.demo import FrameSpec, render_frame
from frameloom.imageio import read_image, read_json, write_image, write_json
from frameloom.model_step import run_batch, write_placeholders
from frameloom.schema import ConfigError
from frameloom.stepcache import BACKGROUND, IMAGE, RECORD, frame_entries
from frameloom.strategies import export

REPO = Path(__file__).resolve().parents[1]


def members_of(frames: dict[str, list[str]], source: str | None = None) -> dict[str, dict]:
    """A step job's members: {frame: {frame, analysis, source}} (``source``: the manifest it continues)."""
    return {frame: {"frame": image, "analysis": analysis, "source": source}
            for frame, (image, analysis) in frames.items()}


def run_step(tmp_path: Path, step: str, run, frames, source=None, log=None, attempt=1, attempts=1) -> dict:
    """One model step job over ``frames`` ({frame: [image, analysis]}); its manifest is <tmp>/<step>.json."""
    return run_batch(step, members_of(frames, source and str(tmp_path / f"{source}.json")), run.step_settings(step),
                     str(tmp_path / "cache"), str(tmp_path / f"{step}.json"), str(tmp_path / (log or f"{step}.log")),
                     attempt, attempts)


def export_of(tmp_path: Path, strategy: str, run, frame: str, frames, steps) -> dict:
    """The frame's export (frameloom.strategies.export) from the manifests of ``steps``, or its placeholders."""
    out = str(tmp_path / "results")
    outputs = layout.frame_outputs(layout.strategy_outputs(out, strategy, run.strategy_cfg(strategy)), frame)
    entries, error = frame_entries(frame, {step: str(tmp_path / f"{step}.json") for step in steps},
                                   str(tmp_path / "cache"))
    if error:
        write_placeholders(frame, strategy, frames[frame][0], outputs, error)
    else:
        export(strategy, *frames[frame], outputs, run.strategy_settings(frame, strategy), entries)
    return {"outputs": outputs, "meta": read_json(outputs["meta"])}


@pytest.fixture()
def batch(tmp_path):
    run = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models")}, tmp_path, workflow_dir=REPO)
    frames = {}
    for i in range(3):
        frame = f"f{i}"
        image, _ = render_frame(FrameSpec(seed=40 + i, width=256, height=144))
        write_image(tmp_path / f"{frame}.png", image)
        write_json(tmp_path / f"{frame}.json", analyze_file(tmp_path / f"{frame}.png", frame, f"{frame}.png"))
        frames[frame] = [str(tmp_path / f"{frame}.png"), str(tmp_path / f"{frame}.json")]
    return {"run": run, "frames": frames, "tmp": tmp_path}


def segment_steps(batch, log_suffix="", **kwargs):
    run_step(batch["tmp"], "masks", batch["run"], batch["frames"], log=f"masks{log_suffix}.log", **kwargs)
    run_step(batch["tmp"], "inpaint", batch["run"], batch["frames"], "masks", log=f"inpaint{log_suffix}.log", **kwargs)


def test_each_step_builds_its_model_once_per_batch_and_caches_per_frame(batch):
    segment_steps(batch)
    masks, inpaint = ((batch["tmp"] / f"{step}.log").read_text() for step in ("masks", "inpaint"))
    assert "frames: 3 (computed 3, from cache 0, failed 0)" in masks and "computed 3" in inpaint
    # One model per step and job, named as a fallback (no weights here).
    assert "model loads: grabcut (fallback: sam2_hiera_large weights missing:" in masks and masks.count(" x1") == 1
    assert "model loads: opencv_ns (fallback: lama weights missing:" in inpaint and inpaint.count(" x1") == 1
    segment_steps(batch, "_again")
    for step in ("masks", "inpaint"):
        again = (batch["tmp"] / f"{step}_again.log").read_text()
        assert "frames: 3 (computed 0, from cache 3, failed 0)" in again and "model loads: none" in again


def test_changing_one_frame_recomputes_only_it(batch):
    segment_steps(batch)
    first = {step: read_json(batch["tmp"] / f"{step}.json")["frames"] for step in ("masks", "inpaint")}
    analysis = read_json(batch["frames"]["f1"][1])
    analysis["foreground_box"] = None
    write_json(batch["frames"]["f1"][1], analysis)
    segment_steps(batch, "_again")
    for step in ("masks", "inpaint"):
        second = read_json(batch["tmp"] / f"{step}.json")["frames"]
        assert "computed 1, from cache 2" in (batch["tmp"] / f"{step}_again.log").read_text()
        assert [f for f in first[step] if first[step][f] != second[f]] == ["f1"]


def test_a_model_setting_reruns_its_step_and_the_steps_after_it_only(batch, tmp_path):
    """The inpainting's mask dilation reruns the inpaint step only; the segmentation's points
    per side rerun the masks step and, through the masks it continues, the inpaint step."""
    segment_steps(batch)
    before = {step: read_json(tmp_path / f"{step}.json")["frames"] for step in ("masks", "inpaint")}
    strategy = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    strategy["strategies"]["segment"]["mask_dilation"] = 9
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump(strategy))
    batch["run"] = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models"),
                                    "strategy_configs": str(tmp_path / "strategies.yaml")}, tmp_path, workflow_dir=REPO)
    segment_steps(batch, "_dilation")
    assert read_json(tmp_path / "masks.json")["frames"] == before["masks"]
    assert "computed 0, from cache 3" in (tmp_path / "masks_dilation.log").read_text()
    assert "computed 3, from cache 0" in (tmp_path / "inpaint_dilation.log").read_text()
    strategy["strategies"]["segment"]["min_instance_size"] = 32
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump(strategy))
    batch["run"] = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models"),
                                    "strategy_configs": str(tmp_path / "strategies.yaml")}, tmp_path, workflow_dir=REPO)
    segment_steps(batch, "_size")
    assert "computed 3, from cache 0" in (tmp_path / "masks_size.log").read_text()
    assert "computed 3, from cache 0" in (tmp_path / "inpaint_size.log").read_text()


def test_export_assembles_the_outputs_from_the_entries_and_names_them(batch):
    segment_steps(batch)
    exported = export_of(batch["tmp"], "segment", batch["run"], "f0", batch["frames"], ("masks", "inpaint"))
    outputs, meta = exported["outputs"], exported["meta"]
    assert {entry["image"] for entry in meta["outputs"]} == {outputs["character"], outputs["background"],
                                                             outputs["composite"]}
    assert all(Path(path).is_file() for path in outputs.values())
    keys = {step: read_json(batch["tmp"] / f"{step}.json")["frames"]["f0"] for step in ("masks", "inpaint")}
    assert meta["cache"] == sorted(f"{step}/{key}" for step, key in keys.items())
    background = read_image(outputs["background"])
    assert np.array_equal(background, read_image(batch["tmp"] / "cache" / "inpaint" / keys["inpaint"] / BACKGROUND))


def test_cache_entries_no_export_was_made_from_are_pruned(batch):
    from frameloom.pruning import prune_cache

    segment_steps(batch)
    meta = export_of(batch["tmp"], "segment", batch["run"], "f0", batch["frames"], ("masks", "inpaint"))["meta"]
    half_built = batch["tmp"] / "cache" / "masks" / ".a-killed-job.x1y2.tmp"  # staging a SIGKILL left
    half_built.mkdir()
    removed = prune_cache(str(batch["tmp"] / "cache"), set(meta["cache"]))
    assert str(half_built) in removed and not half_built.exists()
    removed.remove(str(half_built))
    kept = {step: read_json(batch["tmp"] / f"{step}.json")["frames"] for step in ("masks", "inpaint")}
    assert sorted(removed) == sorted(str(batch["tmp"] / "cache" / step / keys[f])
                                     for step, keys in kept.items() for f in ("f1", "f2"))
    assert all((batch["tmp"] / "cache" / step / keys["f0"] / RECORD).is_file() for step, keys in kept.items())


def test_a_transient_failure_fails_the_try_then_the_retry_recomputes_only_that_frame(batch, monkeypatch):
    from frameloom import model_step
    from frameloom.model_step import BatchFrameFailures

    real = model_step.COMPUTE["masks"]
    calls = []

    def out_of_memory_once(member, *args):
        calls.append(Path(member["frame"]).stem)
        if Path(member["frame"]).stem == "f1" and calls.count("f1") == 1:
            raise MemoryError("simulated: cannot allocate 9 GiB")
        return real(member, *args)

    monkeypatch.setitem(model_step.COMPUTE, "masks", out_of_memory_once)
    with pytest.raises(BatchFrameFailures, match="1 frame\\(s\\) failed, retrying: f1"):
        run_step(batch["tmp"], "masks", batch["run"], batch["frames"], attempt=1, attempts=2)
    log = (batch["tmp"] / "masks.log").read_text()
    assert "f1 failed on attempt 1 of 2" in log and "MemoryError: simulated" in log
    assert not (batch["tmp"] / "masks.json").exists()
    run_step(batch["tmp"], "masks", batch["run"], batch["frames"], log="retry.log", attempt=2, attempts=2)
    assert "computed 1, from cache 2, failed 0" in (batch["tmp"] / "retry.log").read_text()
    assert calls == ["f0", "f1", "f2", "f1"]
    assert read_json(batch["tmp"] / "masks.json")["failed"] == {}


def test_a_frame_failing_on_the_last_try_is_reported_and_its_batch_mates_go_on(batch):
    # The frame file broke after its analysis: the model step cannot decode it.
    Path(batch["frames"]["f1"][0]).write_text("no longer an image")
    segment_steps(batch, attempt=2, attempts=2)
    masks, inpaint = (read_json(batch["tmp"] / f"{step}.json") for step in ("masks", "inpaint"))
    assert masks["failed"] == {"f1": "FrameDecodeError: not a decodable image: f1.png"}
    assert inpaint["failed"] == {"f1": "RuntimeError: masks failed: FrameDecodeError: not a decodable image: f1.png"}
    assert sorted(masks["frames"]) == sorted(inpaint["frames"]) == ["f0", "f2"]
    for frame in ("f0", "f1", "f2"):
        exported = export_of(batch["tmp"], "segment", batch["run"], frame, batch["frames"], ("masks", "inpaint"))
        meta = exported["meta"]
        assert all(Path(path).is_file() for path in exported["outputs"].values())
        if frame == "f1":
            assert meta["error"] == "ModelStepError: masks: FrameDecodeError: not a decodable image: f1.png"
            assert not any(entry["train"] for entry in meta["outputs"])
            assert {e["backend"] for e in meta["outputs"]} == {"placeholder (model step failed)"}
        else:
            assert meta["error"] is None or meta["error"].startswith("NoCharacterFound")


def test_an_enhanced_frame_goes_through_upscale_restore_faces_and_masks(tmp_path):
    """Each enhancement model in its own step: the upscale step's image is what the face step
    continues, the masks step cuts the character out of the enhanced frame, and the export
    records every enhancement step in order, the identity guard last."""
    run = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models")}, tmp_path, workflow_dir=REPO)
    image, _ = render_frame(FrameSpec(seed=8, width=200, height=112, shot="close-up", noise_std=6.0))
    write_image(tmp_path / "small.png", image)
    write_json(tmp_path / "small.json", analyze_file(tmp_path / "small.png", "small", "small.png"))
    frames = {"small": [str(tmp_path / "small.png"), str(tmp_path / "small.json")]}
    run_step(tmp_path, "upscale", run, frames)
    run_step(tmp_path, "restore_faces", run, frames, "upscale")
    run_step(tmp_path, "masks", run, frames, "restore_faces")
    keys = {step: read_json(tmp_path / f"{step}.json")["frames"]["small"] for step in ("upscale", "restore_faces")}
    upscaled = read_image(tmp_path / "cache" / "upscale" / keys["upscale"] / IMAGE)
    assert upscaled.shape[1] == 2 * image.shape[1]
    restored = read_json(tmp_path / "cache" / "restore_faces" / keys["restore_faces"] / RECORD)
    assert restored["chain"] == [f"upscale/{keys['upscale']}"]
    exported = export_of(tmp_path, "enhance_segment", run, "small", frames, ("upscale", "restore_faces", "masks"))
    meta = exported["meta"]
    assert [step["step"] for step in meta["steps"]] == ["upscale", "denoise", "deblur", "face_enhance", "sharpen",
                                                        "identity_guard"]
    assert meta["enhanced_size"] == [upscaled.shape[1], upscaled.shape[0]]
    assert meta["segmentation"]["backend"].startswith("grabcut") and len(meta["cache"]) == 3
    # The cut-out says where it sits on the frame's own grid (curation reads the frame there).
    assert meta["segmentation"]["scale"] == 2.0
    assert meta["segmentation"]["source_box"] == [round(v / 2) for v in meta["segmentation"]["crop_box"]]
    import cv2

    assert cv2.imread(exported["outputs"]["image"], cv2.IMREAD_UNCHANGED).shape[2] == 4  # the cut-out, with alpha


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
    frames, truths = {}, {}
    for frame, identities in (("with_target", (0, 2)), ("without_target", (0, 3))):
        image, truths[frame] = render_frame(FrameSpec(seed=5, width=480, height=270, n_characters=2,
                                                      shot="full-body", identities=identities))
        write_image(tmp_path / f"{frame}.png", image)
        write_json(tmp_path / f"{frame}.json", analyze_file(tmp_path / f"{frame}.png", frame, f"{frame}.png"))
        frames[frame] = [str(tmp_path / f"{frame}.png"), str(tmp_path / f"{frame}.json")]
    run_step(tmp_path, "masks", run, frames)
    run_step(tmp_path, "inpaint", run, frames, "masks")
    found = export_of(tmp_path, "segment", run, "with_target", frames, ("masks", "inpaint"))["meta"]
    assert found["error"] is None and "matches the references" in found["segmentation"]["notes"]
    assert found["segmentation"]["target_score"] >= 0.73
    # The cut-out is the identity-2 character: its crop centre lies in that character's true box.
    x, y, w, h = found["segmentation"]["crop_box"]
    bx, by, bw, bh = truths["with_target"]["boxes"][1]
    assert bx <= x + w / 2 <= bx + bw and by <= y + h / 2 <= by + bh
    missing = export_of(tmp_path, "segment", run, "without_target", frames, ("masks", "inpaint"))["meta"]
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
    frames = {"small": [str(tmp_path / "small.png"), str(tmp_path / "small.json")]}
    run_step(tmp_path, "upscale", run, frames, log="batch.log")
    run_step(tmp_path, "restore_faces", run, frames, "upscale")
    run_step(tmp_path, "masks", run, frames, "restore_faces")
    assert "realesrgan:realesr-animevideov3 x1" in (tmp_path / "batch.log").read_text()
    meta = export_of(tmp_path, "enhance_segment", run, "small", frames, ("upscale", "restore_faces", "masks"))["meta"]
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


def test_a_face_restoration_setting_reruns_restore_faces_and_masks_not_upscale(tmp_path):
    strategy = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())

    def run_chain(fidelity: float, suffix: str):
        strategy["strategies"]["enhance_segment"]["face_enhance_fidelity"] = fidelity
        (tmp_path / "strategies.yaml").write_text(yaml.safe_dump(strategy))
        run = load_run_config({"input_dir": "demo", "models_dir": str(tmp_path / "models"),
                               "strategy_configs": str(tmp_path / "strategies.yaml")}, tmp_path, workflow_dir=REPO)
        for step, source in run.frame_steps("enhance_segment").items():
            run_step(tmp_path, step, run, frames, source, log=f"{step}{suffix}.log")

    image, _ = render_frame(FrameSpec(seed=9, width=160, height=90, shot="close-up"))
    write_image(tmp_path / "f.png", image)
    write_json(tmp_path / "f.json", analyze_file(tmp_path / "f.png", "f", "f.png"))
    frames = {"f": [str(tmp_path / "f.png"), str(tmp_path / "f.json")]}
    run_chain(0.7, "")
    run_chain(0.5, "_fidelity")
    computed = {step: "computed 1" in (tmp_path / f"{step}_fidelity.log").read_text()
                for step in ("upscale", "restore_faces", "masks")}
    assert computed == {"upscale": False, "restore_faces": True, "masks": True}
