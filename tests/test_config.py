"""Config files: defaults from the schemas, and one-line named errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from frameloom.config import load_run_config
from frameloom.schema import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write_yaml(path: Path, payload) -> str:
    path.write_text(yaml.safe_dump(payload))
    return str(path)


def load(tmp_path: Path, decision=None, strategy=None, **run):
    config = {"input_dir": "demo", **run}
    if decision is not None:
        config["decision_thresholds"] = write_yaml(tmp_path / "thresholds.yaml", decision)
    if strategy is not None:
        config["strategy_configs"] = write_yaml(tmp_path / "strategies.yaml", strategy)
    return load_run_config(config, tmp_path, workflow_dir=REPO)


def error_of(tmp_path, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_shipped_files_match_the_seed_defaults(tmp_path):
    run = load(tmp_path)
    assert run.decision["thresholds"] == {
        "simple_background": 0.3, "good_lighting": 0.7, "low_occlusion": 0.2,
        "multi_character": 2, "poor_quality": 0.5, "low_sharpness": 0.4,
    }
    assert run.decision["strategy_targets"] == {
        "keep_full": 0.30, "segment": 0.40, "create_occlusion": 0.15, "enhance_segment": 0.15,
    }
    assert run.decision["dataset_needs"] == {
        "occlusion": 0.8, "multi_character": 0.9, "far_shot": 0.7, "complex_bg": 0.6,
    }
    occlusion = run.strategy_cfg("create_occlusion")
    assert occlusion["blur_radius"] == 15 and occlusion["variations_per_image"] == 3
    assert occlusion["blur_positions"] == ["left", "right", "bottom"] and occlusion["overlay_opacity"] == 0.3
    assert run.strategy_cfg("enhance_segment")["face_enhance_fidelity"] == 0.7
    assert run.enabled_strategies == ["keep_full", "segment", "create_occlusion", "enhance_segment"]


def test_missing_keys_take_schema_defaults(tmp_path):
    run = load(tmp_path, decision={"thresholds": {"good_lighting": 0.75}}, strategy={})
    assert run.decision["thresholds"]["good_lighting"] == 0.75
    assert run.decision["thresholds"]["simple_background"] == 0.3
    assert run.decision["strategy_targets"]["segment"] == 0.40
    assert run.strategy_cfg("segment")["mask_dilation"] == 5
    assert run.run["merge"]["repeats"] == 10 and run.run["limit"] == 0


def test_threshold_outside_unit_interval(tmp_path):
    message = error_of(tmp_path, decision={"thresholds": {"good_lighting": 1.4}})
    assert message == f"{tmp_path / 'thresholds.yaml'}: thresholds.good_lighting: must be at most 1 (got 1.4)"


def test_negative_threshold(tmp_path):
    assert "thresholds.low_sharpness: must be at least 0 (got -0.1)" in error_of(
        tmp_path, decision={"thresholds": {"low_sharpness": -0.1}})


def test_targets_must_sum_to_one(tmp_path):
    targets = {"keep_full": 0.5, "segment": 0.4, "create_occlusion": 0.15, "enhance_segment": 0.15}
    message = error_of(tmp_path, decision={"strategy_targets": targets})
    assert "thresholds.yaml: strategy_targets: must sum to 1 within 0.01 (sum = 1.200)" in message


def test_targets_within_tolerance_pass(tmp_path):
    targets = {"keep_full": 0.305, "segment": 0.40, "create_occlusion": 0.15, "enhance_segment": 0.15}
    load(tmp_path, decision={"strategy_targets": targets})


def test_unknown_strategy_in_targets(tmp_path):
    message = error_of(tmp_path, decision={"strategy_targets": {"powerpaint": 0.1}})
    assert ("strategy_targets.powerpaint: unknown key "
            "(allowed: create_occlusion, enhance_segment, keep_full, segment)") in message


def test_unknown_strategy_in_strategy_file(tmp_path):
    message = error_of(tmp_path, strategy={"strategies": {"my_custom": {"enabled": True}}})
    assert "strategies.yaml: strategies.my_custom: unknown key" in message


def test_bad_enum_value(tmp_path):
    message = error_of(tmp_path, strategy={"strategies": {"segment": {"inpainting_model": "photoshop"}}})
    assert "strategies.segment.inpainting_model: must be one of lama, opencv (got \"photoshop\")" in message


def test_missing_input_dir(tmp_path):
    message = error_of(tmp_path, input_dir=str(tmp_path / "nowhere"))
    assert message.startswith("config/config.yaml: input_dir: directory does not exist")


def test_all_strategies_disabled(tmp_path):
    off = {name: {"enabled": False} for name in ("keep_full", "segment", "create_occlusion", "enhance_segment")}
    assert "at least one strategy must be enabled" in error_of(tmp_path, strategy={"strategies": off})


def test_dataset_needs_file_overrides(tmp_path):
    needs = tmp_path / "needs.json"
    needs.write_text(json.dumps({"occlusion": 0.2}))
    run = load(tmp_path, dataset_needs_file=str(needs))
    assert run.decision["dataset_needs"]["occlusion"] == 0.2
    assert run.decision["dataset_needs"]["far_shot"] == 0.7
    needs.write_text(json.dumps({"occlusion": 3}))
    assert "needs.json: occlusion: must be at most 1 (got 3)" in error_of(tmp_path, dataset_needs_file=str(needs))


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "thresholds.yaml"
    bad.write_text("thresholds:\n  good_lighting: [0.7\n")
    with pytest.raises(ConfigError, match=r"thresholds.yaml: not valid YAML at line \d+"):
        load_run_config({"decision_thresholds": str(bad)}, tmp_path, workflow_dir=REPO)


@pytest.mark.slow
def test_snakemake_stops_before_any_job(tmp_path):
    bad = write_yaml(tmp_path / "thresholds.yaml", {"thresholds": {"good_lighting": 1.4}})
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
         "--directory", str(tmp_path), "--config", f"decision_thresholds={bad}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2  # a configuration error, by the one exit-code rule
    errors = [line for line in result.stderr.splitlines() if line.startswith("frameloom:")]
    assert errors == [f"frameloom: configuration error: {bad}: thresholds.good_lighting: must be at most 1 (got 1.4)"]
    assert not (tmp_path / "results").exists()


def test_face_weights_follow_model_paths(tmp_path):
    models = tmp_path / "models"
    (models / "faces").mkdir(parents=True)
    run = load(tmp_path, models_dir=str(models))
    assert run.face_weights() == {}
    (models / "faces" / "lbpcascade_animeface.xml").write_text("<cascade/>")
    assert run.face_weights() == {"cascade_path": str(models / "faces" / "lbpcascade_animeface.xml")}
    (models / "faces" / "face_detection_yunet.onnx").write_bytes(b"onnx")
    assert run.face_weights() == {"yunet_path": str(models / "faces" / "face_detection_yunet.onnx")}
    custom = load(tmp_path, models_dir=str(models), strategy={"model_paths": {"yunet": "elsewhere/yunet.onnx"}})
    assert custom.face_weights() == {"cascade_path": str(models / "faces" / "lbpcascade_animeface.xml")}


def test_captioner_status_and_strict_mode(tmp_path):
    only_keep = {"strategies": {name: {"enabled": name == "keep_full"}
                                for name in ("keep_full", "segment", "create_occlusion", "enhance_segment")}}
    models = tmp_path / "models"
    run = load(tmp_path, strategy=only_keep, models_dir=str(models))
    vlm = models / "vlm" / "Qwen2-VL-2B-Instruct"
    # No strategy segments: no segmentation weights are asked for.
    assert run.model_requirements() == {}
    assert run.vlm_caption_strategies == []
    missing = "LICENSE is missing (an unfinished download?)"
    assert run.caption_status() == f"template (fallback: qwen2_vl weights missing at {vlm}: {missing})"
    assert error_of(tmp_path, strategy=only_keep, models_dir=str(models), strict_models=True) == (
        f"config/config.yaml: strict_models: qwen2_vl weights missing: {vlm} ({missing}; a Qwen2-VL or "
        "Qwen2.5-VL folder: config.json, weights, tokenizer and preprocessor files)")
    # The default folder holds the pinned snapshot or nothing: a config.json alone (a download
    # stopped half-way) is no model.
    vlm.mkdir(parents=True)
    (vlm / "config.json").write_text("{}")
    assert not load(tmp_path, strategy=only_keep, models_dir=str(models)).captioner()["present"]
    # A folder of the user's own needs the files from_pretrained reads and every indexed shard.
    own = models / "vlm" / "my-qwen"
    own.mkdir()
    (own / "config.json").write_text("{}")
    (own / "model.safetensors.index.json").write_text('{"weight_map": {"a": "part-1.safetensors"}}')
    paths = {**only_keep, "model_paths": {"qwen2_vl": "vlm/my-qwen"}}
    partial = load(tmp_path, strategy=paths, models_dir=str(models)).captioner()
    assert not partial["present"] and partial["why"] == "missing part-1.safetensors"
    (own / "part-1.safetensors").write_bytes(b"weights")
    run = load(tmp_path, strategy=paths, models_dir=str(models), strict_models=True)
    assert run.vlm_caption_strategies == ["keep_full"]
    assert run.caption_status() == f"qwen2_vl ({own})"
    before = run.captioner()["fingerprint"]
    (own / "part-1.safetensors").write_bytes(b"new weights")
    assert run.captioner()["fingerprint"] != before, "new weights must rerun the caption jobs"
    templates = {"strategies": {**only_keep["strategies"], "keep_full": {"caption_model": "template"}}}
    assert load(tmp_path, strategy=templates, models_dir=str(models)).caption_status() == "template"
    assert load(tmp_path, strategy=templates, models_dir=str(models)).vlm_caption_strategies == []


def test_device_cuda_without_a_usable_gpu_stops_in_one_line(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from frameloom import devices

    if torch.cuda.is_available():
        pytest.skip("a usable GPU: nothing to refuse")
    error = error_of(tmp_path, device="cuda")
    assert error.startswith("config/config.yaml: device: cuda, but torch ") and "\n" not in error
    assert "install a torch build for your driver" in error
    monkeypatch.setattr(torch.version, "cuda", None)
    assert devices.cuda_problem() == f"torch {torch.__version__} is a CPU-only build"
    assert devices.cpu_because("auto", "cpu") == devices.cuda_problem()
    assert devices.cpu_because("cpu", "cpu") is None


def test_model_jobs_ask_for_memory_from_the_weights_they_load(tmp_path):
    from frameloom.config import JOB_BASE_MB, WEIGHT_MEMORY_FACTOR

    models = tmp_path / "models"
    run = load(tmp_path, models_dir=str(models))
    assert run.step_memory_mb("masks") == JOB_BASE_MB  # no weights: the classical fallbacks
    (models / "segmentation").mkdir(parents=True)
    with open(models / "segmentation" / "sam2_hiera_large.pt", "wb") as handle:
        handle.truncate(30 * 2**20)
    (models / "inpainting").mkdir()
    with open(models / "inpainting" / "big-lama.pt", "wb") as handle:
        handle.truncate(10 * 2**20)
    # Each step's job asks for its own model only.
    assert run.step_memory_mb("masks") == JOB_BASE_MB + WEIGHT_MEMORY_FACTOR * 30
    assert run.step_memory_mb("inpaint") == JOB_BASE_MB + WEIGHT_MEMORY_FACTOR * 10
    assert run.step_memory_mb("upscale") == run.step_memory_mb("restore_faces") == JOB_BASE_MB  # no weights here
    assert run.job_memory_mb([str(models / "segmentation"), None, str(models / "missing")]) == \
        JOB_BASE_MB + WEIGHT_MEMORY_FACTOR * 30


def test_frames_per_job_is_its_own_setting_apart_from_the_inference_batch(tmp_path, monkeypatch):
    """processing.frames_per_job sizes the model jobs (auto: by where the models run);
    processing.batch_size is the inference batch the model steps receive."""
    from frameloom import config as config_module

    strategy = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    run = load(tmp_path)
    assert run.strategy["processing"]["frames_per_job"] == "auto"
    assert not run.uses_gpu and run.model_frames_per_job == config_module.CPU_FRAMES_PER_JOB
    assert run.step_settings("restore_faces")["batch_size"] == 8 and "batch_size" not in run.step_settings("masks")
    strategy["processing"] |= {"frames_per_job": 40, "batch_size": 2}
    run = load(tmp_path, strategy=strategy)
    assert run.model_frames_per_job == 40 and run.step_settings("restore_faces")["batch_size"] == 2
    # With weights present and a GPU asked for by name, auto gives the GPU's job size.
    strategy["processing"]["frames_per_job"] = "auto"
    run = load(tmp_path, strategy=strategy)
    monkeypatch.setattr(type(run), "uses_gpu", property(lambda self: True))
    expected = config_module.GPU_FRAMES_PER_JOB if torch_sees_a_gpu() else config_module.CPU_FRAMES_PER_JOB
    assert run.model_frames_per_job == expected
    monkeypatch.setitem(run.run, "device", "cuda")
    assert run.model_frames_per_job == config_module.GPU_FRAMES_PER_JOB
    strategy["processing"]["frames_per_job"] = 0
    assert "frames_per_job" in error_of(tmp_path, strategy=strategy)


def torch_sees_a_gpu() -> bool:
    torch = pytest.importorskip("torch")
    return torch.cuda.is_available()


def test_face_restoration_after_upscaling_or_a_named_error(tmp_path):
    """Each model is its own step, upscale before restore_faces: an order that needs the other way stops."""
    strategy = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    strategy["strategies"]["enhance_segment"]["enhancement_steps"] = ["face_enhance", "upscale"]
    assert error_of(tmp_path, strategy=strategy).endswith(
        "strategies.enhance_segment.enhancement_steps: upscale must come before face_enhance "
        "(each runs as its own model step, in that order)")
    strategy["strategies"]["enhance_segment"]["enhancement_steps"] = ["denoise", "face_enhance", "sharpen"]
    run = load(tmp_path, strategy=strategy)
    assert list(run.frame_steps("enhance_segment")) == ["upscale", "restore_faces", "masks"]
    strategy["strategies"]["segment"] |= {"save_background": False, "save_composite": False}
    assert run.frame_steps("segment") == {"masks": None, "inpaint": "masks"}
    assert load(tmp_path, strategy=strategy).frame_steps("segment") == {"masks": None}
