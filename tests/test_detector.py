"""Character finder: Grounding DINO's real loading, batching and post-processing on a random-weight tiny model.

No Grounding DINO weights can be downloaded here, so a module fixture saves a
tiny random-weight ``GroundingDinoForObjectDetection`` (a small Swin
backbone, a two-layer BERT with a real WordPiece vocab.txt) and its
processor in the snapshot layout the registry downloads (config.json,
model.safetensors, preprocessor_config.json, tokenizer files, vocab.txt), and
``CharacterDetector`` loads it with ``from_pretrained(local_files_only=True)``
like the real one. Random weights give meaningless boxes, so the model runs
check the contract (keys, frame bounds, order, batching, one load per job);
the box filtering is checked on hand-made model outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameloom.demo import FrameSpec, render_frame
from frameloom.detector import DEFAULT_MODEL_DIR, MAX_FRAME_SHARE, MODEL_NAME, model_label, nms, text_prompt
from frameloom.imageio import write_image

PROMPTS = ["person", "animal", "creature", "cartoon character"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "animal", "creature", "cartoon", "character"]


def test_prompt_is_lower_case_phrases_each_ended_by_a_dot():
    assert text_prompt(PROMPTS) == "person. animal. creature. cartoon character."
    assert text_prompt([" Person.", "CARTOON Character", ""]) == "person. cartoon character."
    with pytest.raises(ValueError, match="no prompt phrase"):
        text_prompt([" ", "."])


def test_model_label():
    assert model_label(Path("/models") / DEFAULT_MODEL_DIR) == MODEL_NAME
    assert model_label("/models/detection/grounding-dino-base") == "grounding-dino-base"


def test_nms_is_class_agnostic_greedy_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 20], [50, 50, 60, 60], [5, 0, 15, 10]], float)
    scores = np.array([0.5, 0.9, 0.8, 0.1, 0.5])
    # 1 (0.9) suppresses 0 (IoU 90/110); 2 and 4 overlap 1 by 90/210 and 60/140, and each other by 50/250.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2, 4, 3]
    assert nms(boxes, scores, 0.95).tolist() == [1, 2, 0, 4, 3], "ties keep their input order"
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_download_registry_pins_the_whole_snapshot_at_one_revision():
    import re

    from frameloom import download

    snapshot = [download.MODELS[name] for name in download.resolve_names(["grounding_dino_tiny"])]
    assert {Path(model.relative_path).parent.as_posix() for model in snapshot} == {DEFAULT_MODEL_DIR}
    assert {Path(model.relative_path).name for model in snapshot} >= {
        "config.json", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json", "vocab.txt"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", model.sha256) and model.size for model in snapshot)
    assert {re.search(r"/IDEA-Research/grounding-dino-tiny/resolve/([0-9a-f]{40})/", model.url)[1]
            for model in snapshot} == {"a2bb814dd30d776dcf7e30523b00659f4f141c71"}


@pytest.fixture(scope="module")
def tiny_grounding_dino(tmp_path_factory) -> Path:
    """A random-weight Grounding DINO snapshot, saved as the real one is laid out."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("models") / Path(DEFAULT_MODEL_DIR).name
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)  # WordPiece over that vocab.txt
    backbone = transformers.SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1],
                                       num_heads=[1, 1, 1, 1], window_size=4, out_indices=[2, 3, 4])
    text = transformers.BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    config = transformers.GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, num_queries=20, max_text_len=32,
        encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2)
    torch.manual_seed(0)
    transformers.GroundingDinoForObjectDetection(config).save_pretrained(folder)
    # Small inputs keep the CPU forward fast; preprocessor_config.json as in the real snapshot.
    transformers.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def detector(tiny_grounding_dino):
    from frameloom.detector import CharacterDetector

    return CharacterDetector(tiny_grounding_dino, device="cpu", box_threshold=0.3, text_threshold=0.25,
                             batch_size=4)


def frames(count: int, width: int = 160, height: int = 96) -> list[np.ndarray]:
    return [render_frame(FrameSpec(seed=seed, width=width, height=height))[0] for seed in range(count)]


def count_forwards(model) -> list[int]:
    """Batch sizes of the model's forward passes, appended as they run."""
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda _, args, kwargs: sizes.append(kwargs["pixel_values"].shape[0]),
                                    with_kwargs=True)
    return sizes


def iou(a: list[int], b: list[int]) -> float:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    shared = max(0, w) * max(0, h)
    return shared / (a[2] * a[3] + b[2] * b[3] - shared)


@pytest.mark.slow
def test_loads_the_snapshot_offline_on_the_cpu_in_fp32(detector, tiny_grounding_dino):
    import torch

    assert (detector.device, detector.dtype) == ("cpu", "float32")
    assert detector.model_name == MODEL_NAME
    assert {p.dtype for p in detector.model.parameters()} == {torch.float32}
    assert type(detector.model).__name__ == "GroundingDinoForObjectDetection"
    assert (tiny_grounding_dino / "preprocessor_config.json").is_file()
    assert detector.processor.tokenizer.convert_ids_to_tokens(detector.processor.tokenizer("cartoon").input_ids) == [
        "[CLS]", "cartoon", "[SEP]"], "the tokenizer is the one built from vocab.txt"


@pytest.mark.slow
def test_detections_follow_the_contract(detector):
    images = [*frames(2), render_frame(FrameSpec(seed=5, width=90, height=150, shot="full-body"))[0]]
    results = detector.detect(images, PROMPTS)
    assert len(results) == len(images)
    assert sum(len(found) for found in results) > 0, "random weights score high: something must be found"
    for image, found in zip(images, results):
        height, width = image.shape[:2]
        for detection in found:
            assert set(detection) == {"box", "score", "label"}
            x, y, w, h = detection["box"]
            assert all(type(v) is int for v in detection["box"])
            assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= width and y + h <= height
            assert w * h <= MAX_FRAME_SHARE * width * height + width + height
            assert type(detection["score"]) is float and 0.3 < detection["score"] <= 1.0
            assert round(detection["score"], 4) == detection["score"]
            assert isinstance(detection["label"], str)
            assert "." not in detection["label"] and "[SEP]" not in detection["label"]
            assert set(detection["label"].split()) <= {"person", "animal", "creature", "cartoon", "character"}
        scores = [d["score"] for d in found]
        assert scores == sorted(scores, reverse=True)
        assert all(iou(a["box"], b["box"]) <= 0.5 + 0.1 for i, a in enumerate(found) for b in found[i + 1:])
    json.dumps(results)  # plain Python types, ready for the detection files


@pytest.mark.slow
def test_a_batch_gives_each_frame_what_it_gets_alone(detector):
    images = frames(3)
    forwards = count_forwards(detector.model)
    together = detector.detect(images, PROMPTS)
    assert forwards == [3], "one forward for the whole batch"
    alone = [detector.detect([image], PROMPTS)[0] for image in images]
    assert forwards == [3, 1, 1, 1]
    assert any(together)
    for batched, single in zip(together, alone):
        assert [d["label"] for d in batched] == [d["label"] for d in single]
        assert [d["box"] for d in batched] == [d["box"] for d in single]
        assert np.allclose([d["score"] for d in batched], [d["score"] for d in single], atol=2e-4)


@pytest.mark.slow
def test_frames_run_batch_size_at_a_time(tiny_grounding_dino):
    from frameloom.detector import CharacterDetector

    small = CharacterDetector(tiny_grounding_dino, device="cpu", batch_size=2)
    forwards = count_forwards(small.model)
    assert len(small.detect(frames(5), PROMPTS)) == 5
    assert forwards == [2, 2, 1]
    assert small.detect([], PROMPTS) == [] and forwards == [2, 2, 1]


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_retries(tiny_grounding_dino, detector):
    import torch

    from frameloom.detector import CharacterDetector

    images = frames(4)
    expected = detector.detect(images, PROMPTS)
    tight = CharacterDetector(tiny_grounding_dino, device="cpu", batch_size=4)
    forwards = []

    def fits_two(_, args, kwargs):
        forwards.append(kwargs["pixel_values"].shape[0])
        if kwargs["pixel_values"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    tight.model.register_forward_pre_hook(fits_two, with_kwargs=True)
    assert [[d["box"] for d in found] for found in tight.detect(images, PROMPTS)] == [
        [d["box"] for d in found] for found in expected]
    assert forwards == [4, 2, 2] and tight.batch_size == 2, "halved once, kept for the rest"

    def fits_none(_, args, kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    tight.model.register_forward_pre_hook(fits_none, with_kwargs=True)
    with pytest.raises(torch.OutOfMemoryError):
        tight.detect(images, PROMPTS)
    assert tight.batch_size == 1


@pytest.mark.slow
def test_frame_sized_boxes_are_dropped_overlaps_suppressed_and_boxes_clipped(detector):
    import torch

    raw = {  # what post-processing returns: [x0, y0, x1, y1] in frame pixels, best not first
        "boxes": torch.tensor([[-5.0, -3.0, 100.0, 60.0],  # the whole 100x60 frame (and beyond)
                               [10.2, 5.7, 40.1, 50.0],
                               [11.0, 6.0, 41.0, 52.0],  # the same character again, lower score
                               [80.5, 30.0, 130.0, 70.0],  # runs off the frame
                               [50.0, 50.0, 50.0, 58.0]]),  # no width
        "scores": torch.tensor([0.99, 0.61234567, 0.6, 0.45, 0.9]),
        "text_labels": ["cartoon character", "person [SEP]", "person", "animal . creature", "person"],
    }
    assert detector._tidy(raw, (60, 100)) == [
        {"box": [10, 5, 31, 45], "score": 0.6123, "label": "person"},
        {"box": [80, 30, 20, 30], "score": 0.45, "label": "animal creature"},
    ]


@pytest.mark.slow
def test_detect_step_writes_one_file_per_frame_and_loads_the_model_once(tiny_grounding_dino, detector, tmp_path,
                                                                         monkeypatch):
    import transformers

    from frameloom import detect_step

    images = frames(3)
    paths = {}
    for index, image in enumerate(images):
        paths[f"f{index}"] = tmp_path / "frames" / f"f{index}.png"
        write_image(paths["f" + str(index)], image)
    paths["broken"] = tmp_path / "frames" / "broken.png"
    paths["broken"].write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    frames_json = tmp_path / "frames.json"
    frames_json.write_text(json.dumps({frame: str(path) for frame, path in paths.items()}), encoding="utf-8")

    loads = []
    real = transformers.AutoModelForZeroShotObjectDetection.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForZeroShotObjectDetection, "from_pretrained",
                        lambda *args, **kwargs: loads.append(args) or real(*args, **kwargs))
    out, log = tmp_path / "detections", tmp_path / "detect.log"
    assert detect_step.main([
        "--frames", str(frames_json), "--out-dir", str(out), "--model-dir", str(tiny_grounding_dino),
        "--prompts", *PROMPTS, "--device", "cpu", "--batch-size", "2", "--log", str(log)]) == 0

    assert len(loads) == 1
    assert sorted(p.name for p in out.iterdir()) == ["broken.json", "f0.json", "f1.json", "f2.json"]
    broken = json.loads((out / "broken.json").read_text())
    assert broken["ok"] is False and broken["frame"] == "broken"
    assert broken["error"].startswith("FrameDecodeError: ") and "broken.png" in broken["error"]
    expected = detector.detect(images, PROMPTS)
    for index in range(3):
        record = json.loads((out / f"f{index}.json").read_text())
        assert {k: v for k, v in record.items() if k != "detections"} == {
            "frame": f"f{index}", "ok": True, "finder": "grounding_dino", "model": MODEL_NAME, "device": "cpu",
            "dtype": "float32", "prompts": PROMPTS}
        assert [d["box"] for d in record["detections"]] == [d["box"] for d in expected[index]]
    text = log.read_text()
    assert "device: cpu, dtype: float32" in text
    assert "frames: 4 (detected 3, failed 1, from cache 0)" in text
    assert "model loads: 1" in text
    assert "detection: " in text and "detect batch: " in text  # the seconds


@pytest.mark.slow
def test_detect_step_with_a_given_detector_names_a_missing_frame(detector, tmp_path):
    from frameloom import detect_step

    write_image(tmp_path / "a.png", frames(1)[0])
    frames_given = {"a": str(tmp_path / "a.png"), "gone": str(tmp_path / "missing.png")}
    records = detect_step.run_detections(frames_given, str(tmp_path / "out"), "unused",
                                         ["person"], str(tmp_path / "log"), detector=detector)
    assert records["a"]["ok"] and records["a"]["prompts"] == ["person"]
    assert records["gone"]["ok"] is False and records["gone"]["error"].startswith("FileNotFoundError: ")
    assert json.loads((tmp_path / "out" / "a.json").read_text()) == records["a"]
    assert "model loads: 0" in (tmp_path / "log").read_text(), "a given detector is not loaded again"


@pytest.mark.slow
def test_the_workflow_runs_the_finder_before_the_analysis_and_the_analysis_takes_its_cast(tiny_grounding_dino,
                                                                                          tmp_path):
    """With the finder's weights present: one find_characters job per frames_per_job frames, each loading
    the model once, every analysis names the finder and counts the characters it found, and the merge
    keeps the finder's cache entries."""
    import shutil
    import subprocess
    import sys

    import yaml

    from frameloom.demo import write_demo_set
    from frameloom.imageio import read_json

    repo = Path(__file__).resolve().parents[1]
    models = tmp_path / "models"
    # A folder of its own: the default one must hold the pinned snapshot.
    shutil.copytree(tiny_grounding_dino, models / "detection" / "tiny-grounding-dino")
    write_demo_set(tmp_path / "frames", 3, seed=5, width=320, height=180)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(
        {"input_dir": "frames", "models_dir": str(models), "device": "cpu"}))
    strategy = yaml.safe_load((repo / "config" / "strategy_configs.yaml").read_text())
    strategy["character_finder"]["frames_per_job"] = 2
    strategy["model_paths"]["grounding_dino"] = "detection/tiny-grounding-dino"
    (tmp_path / "config" / "strategy_configs.yaml").write_text(yaml.safe_dump(strategy))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--cores", "2",
               "--directory", str(tmp_path)]
    result = subprocess.run(command + ["--until", "decide"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    batches = sorted((tmp_path / "results" / "detections" / "batches").iterdir())
    assert 1 <= len(batches) <= 3 and sum(len(list(b.glob("*.json"))) for b in batches) == 3  # about 2 a job
    logs = sorted((tmp_path / "results" / "logs" / "find_characters").glob("*.log"))
    assert len(logs) == len(batches) and all("model loads: 1" in log.read_text() for log in logs)
    analyses = sorted((tmp_path / "results" / "analysis").glob("*.json"))
    assert len(analyses) == 3
    for path in analyses:
        record = read_json(path)
        found = read_json(next(b / path.name for b in batches if (b / path.name).exists()))
        assert record["finder"] == "grounding_dino" == found["finder"]
        assert record["instance_count"] == len(found["detections"])
    # The merge keeps the finder's cache entries the current detection files name, and only those
    # (the rest of the run: the random-weight finder's boxes fail some frames, so exit code 1).
    (tmp_path / "results" / ".cache" / "finder" / "0123456789abcdef").mkdir()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1) and "processing_report.json" in result.stdout + result.stderr
    entries = sorted(p.name for p in (tmp_path / "results" / ".cache" / "finder").iterdir())
    assert entries == sorted(read_json(p)["cache"].split("/")[1] for b in batches for p in b.glob("*.json"))


@pytest.mark.slow
def test_detections_are_cached_by_content_so_a_reformed_batch_detects_only_its_new_frames(tiny_grounding_dino,
                                                                                            tmp_path, monkeypatch):
    """A frame the finder saw before (same bytes, model files and settings) is not detected again;
    a job whose frames are all cached loads no model."""
    import transformers

    from frameloom import detect_step

    paths = {}
    for index, image in enumerate(frames(3)):
        paths[f"f{index}"] = str(tmp_path / "frames" / f"f{index}.png")
        write_image(paths[f"f{index}"], image)
    loads = []
    real = transformers.AutoModelForZeroShotObjectDetection.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForZeroShotObjectDetection, "from_pretrained",
                        lambda *args, **kwargs: loads.append(args) or real(*args, **kwargs))

    def detect(names, log, prompts=PROMPTS, fingerprint="tiny-1"):
        return detect_step.run_detections({name: paths[name] for name in names}, str(tmp_path / log),
                                          str(tiny_grounding_dino), prompts, str(tmp_path / f"{log}.log"),
                                          device="cpu", cache_dir=str(tmp_path / "cache"),
                                          model_fingerprint=fingerprint)

    first = detect(["f0", "f1"], "first")
    again = detect(["f0", "f1"], "again")
    assert len(loads) == 1 and "model loads: 0" in (tmp_path / "again.log").read_text()
    assert again == first
    detect(["f0", "f1", "f2"], "reformed")
    assert "from cache 2" in (tmp_path / "reformed.log").read_text() and len(loads) == 2
    other = detect(["f0"], "other_prompts", prompts=["person"])
    assert "from cache 0" in (tmp_path / "other_prompts.log").read_text()
    detect(["f0"], "other_weights", fingerprint="tiny-2")  # new weights: detected again
    assert "from cache 0" in (tmp_path / "other_weights.log").read_text()
    with pytest.raises(ValueError, match="fingerprint"):  # a cache that cannot tell weights apart
        detect(["f0"], "no_fingerprint", fingerprint="")
    # Each detection file names its cache entry; the merge keeps the entries current files name.
    from frameloom.pruning import prune_cache

    current = detect(["f0", "f1", "f2"], "current")
    assert all((tmp_path / "cache" / record["cache"] / "record.json").is_file() for record in current.values())
    removed = prune_cache(str(tmp_path / "cache"), {record["cache"] for record in current.values()})
    assert len(removed) == 2 and str(tmp_path / "cache" / other["f0"]["cache"]) in removed
