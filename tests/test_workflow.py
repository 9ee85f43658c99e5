"""End to end: snakemake on generated frames, reruns, lint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import shared_dir

from frameloom.demo import write_demo_set
from frameloom.imageio import read_image, write_image
from frameloom.registry import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
TRIGGER = "tstchar"
# Real face detectors when ../shared is present; otherwise the packaged MTCNN, named as such.
SHARED_MODELS = Path(os.environ.get("FRAMELOOM_MODELS_DIR", shared_dir() / "models"))
HAS_FACE_WEIGHTS = (SHARED_MODELS / "faces" / "face_detection_yunet.onnx").is_file()


def faces_only_models_dir(root: Path) -> Path:
    """A models dir with only the face detectors: Real-ESRGAN on CPU would take minutes per frame."""
    models = root / "models"
    models.mkdir(exist_ok=True)
    if HAS_FACE_WEIGHTS and not (models / "faces").exists():
        (models / "faces").symlink_to(SHARED_MODELS / "faces")
    return models
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the workflow; it must succeed, with exit code 1 exactly when its current report
    has failed frames (the one exit-code rule), the summary printed then."""
    from frameloom.summary import current_report, exit_code

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
         "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=900,
    )
    output = result.stdout[-3000:] + result.stderr[-5000:]
    # Snakemake calls no handler for a dry run, a lint, a report or a run with nothing to do: its own 0.
    idle = any(arg.split("=")[0] in ("-n", "--dry-run", "--lint", "--report", "--unlock") for arg in args) \
        or "Nothing to be done" in result.stderr
    report = None if idle else current_report(workdir / "results")
    assert result.returncode == exit_code(report), output
    if report is not None:
        assert "frameloom summary" in result.stdout and "training images:" in result.stdout, output
    return result


JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)*)", re.M)
FRAME = re.compile(r"^    wildcards: frame=(\S+)$", re.M)


def jobs_run(result: subprocess.CompletedProcess) -> list[tuple[str, str | None]]:
    """(rule, frame) of every job a snakemake run printed (its header and indented details)."""
    output = result.stdout + result.stderr
    return [(m.group(1), (FRAME.search(m.group(2)) or [None, None])[1]) for m in JOB.finditer(output)]


def write_config(workdir: Path, **overrides) -> None:
    config = {"input_dir": "frames", "character": {"name": "test", "trigger_word": TRIGGER},
              "merge": {"repeats": 5}, "models_dir": str(faces_only_models_dir(workdir)), **overrides}
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """mtime and content of every output file."""
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.rglob("*")) if path.is_file()
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    write_demo_set(workdir / "frames", 12, seed=7, truth_dir=workdir / "truth")
    (workdir / "frames" / "zz broken.png").write_text("not an image")  # fails alone, by name
    write_config(workdir)
    snakemake(workdir)
    return workdir


def test_a_run_with_a_failed_frame_exits_1_with_the_summary(run_dir):
    """The plain `snakemake` run ends as `frameloom run` does: the summary, the failure named, exit 1."""
    result = snakemake(run_dir, "--forcerun", "merge")
    assert result.returncode == 1
    assert "failures: FrameDecodeError x1 (first: zz broken.png: FrameDecodeError: " in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("report: ")


def test_report_has_the_seed_shape(run_dir):
    report = json.loads((run_dir / "results" / "processing_report.json").read_text())
    summary = report["summary"]
    assert summary["total_frames"] == 13
    assert summary["successful"] + summary["failed"] + summary["excluded"] == 13
    broken = next(r for r in report["results"] if r["frame"] == "zz broken.png")
    assert broken == {**broken, "success": False, "strategy": None, "outputs": [],
                      "error": "FrameDecodeError: not a decodable image: zz broken.png"}
    assert set(summary["strategies"]) == set(STRATEGIES)
    assert sum(summary["strategies"].values()) == summary["successful"]
    for result in report["results"]:
        assert ({"frame", "strategy", "confidence", "reasoning", "outputs", "success", "error", "backends"}
                <= set(result))
        assert result["frame"].endswith(".png")
        for output in result["outputs"]:
            assert (run_dir / output).is_file(), output
        assert set(result["backends"]) <= set(result["outputs"])
    # No VLM weights in this run: every caption is a template, and the report names the fallback.
    assert summary["captions"]["captioner"].startswith("template (fallback: qwen2_vl weights missing at ")
    assert summary["captions"]["sources"] == {"template": summary["produced_images"]}
    assert not (run_dir / "results" / "captions").exists()


def test_every_strategy_produced_its_files(run_dir):
    report = json.loads((run_dir / "results" / "processing_report.json").read_text())
    by_strategy = {}
    for result in report["results"]:
        if result["strategy"]:
            by_strategy.setdefault(result["strategy"], []).append(result)
    assert set(by_strategy) == set(STRATEGIES), {k: len(v) for k, v in by_strategy.items()}
    out = run_dir / "results"
    for result in by_strategy["keep_full"]:
        frame = result["frame_id"]
        assert ((out / "keep_full/images" / f"{frame}.png").read_bytes()
                == (run_dir / "frames" / result["frame"]).read_bytes())
        assert (out / "keep_full/captions" / f"{frame}.txt").read_text().startswith(f"{TRIGGER}, ")
    if HAS_FACE_WEIGHTS:
        assert report["summary"]["failed"] == 1, [r["error"] for r in report["results"] if r["error"]]
    for result in by_strategy["segment"]:
        frame = result["frame_id"]
        if not result["success"]:
            # Without face weights a busy frame may give GrabCut no seed: reported, never silent.
            assert result["error"].startswith("NoCharacterFound: ")
            continue
        character = read_image(out / "segment/images" / f"{frame}_character.png", keep_alpha=True)
        alpha = character[..., 3]
        assert alpha.max() == 255 and alpha.min() == 0
        assert np.any((alpha > 0) & (alpha < 255)), "alpha edge should be soft"
        for role in ("background", "composite"):
            assert (out / "segment/images" / f"{frame}_{role}.png").is_file()
        assert ("isolated character, clean background"
                in (out / "segment/captions" / f"{frame}_character.txt").read_text())
        background_caption = (out / "segment/captions" / f"{frame}_background.txt").read_text()
        assert background_caption.startswith("3d animated scene, ") and "environment only" in background_caption
        assert TRIGGER not in background_caption
        others = json.loads((out / "segment/meta" / f"{frame}.json").read_text())["segmentation"]["instances_found"] - 1
        assert ("other character" in background_caption) == (others > 0)
        assert ("no characters" in background_caption) == (others == 0)
    for result in by_strategy["create_occlusion"]:
        frame = result["frame_id"]
        captions = [(out / "create_occlusion/captions" / f"{frame}_occ{i}.txt").read_text() for i in range(3)]
        assert all((out / "create_occlusion/images" / f"{frame}_occ{i}.png").is_file() for i in range(3))
        for caption, description in zip(captions, ["partially obscured", "with foreground elements",
                                                   "partially hidden behind object"]):
            assert description in caption
    for result in by_strategy["enhance_segment"]:
        frame = result["frame_id"]
        assert (out / "enhance_segment/images" / f"{frame}_enhanced_character.png").is_file()
        assert "enhanced" in (out / "enhance_segment/captions" / f"{frame}_enhanced_character.txt").read_text()


def test_training_folder_is_kohya_shaped(run_dir):
    import tomllib

    report = json.loads((run_dir / "results" / "processing_report.json").read_text())
    concepts = report["summary"]["repeats"]
    folders = sorted(p for p in (run_dir / "results" / "training").iterdir() if p.is_dir())
    assert [p.name for p in folders] == sorted(concepts)
    images, captions = [], []
    for folder in folders:
        strategy = concepts[folder.name]["strategy"]
        assert folder.name == f"{concepts[folder.name]['repeats']}_{TRIGGER}_{strategy}"
        assert all(p.name.startswith(f"{strategy}__") for p in folder.iterdir())
        assert len(list(folder.glob("*.png"))) == concepts[folder.name]["images"]
        images += sorted(folder.glob("*.png"))
        captions += sorted(folder.glob("*.txt"))
    assert len(images) == report["summary"]["training_images"] > 0
    assert [p.stem for p in images] == [p.stem for p in captions]
    assert not any("_composite" in p.name for p in images)  # review images stay out of training
    assert (run_dir / "results" / "report.html").read_text().count("<tr>") > 13
    # The trainer configs name the same folders with the same repeats.
    kohya = tomllib.loads((run_dir / "results" / "exports" / "kohya_dataset.toml").read_text())
    subsets = {Path(s["image_dir"]): s["num_repeats"] for s in kohya["datasets"][0]["subsets"]}
    assert subsets == {folder.resolve(): concepts[folder.name]["repeats"] for folder in folders}
    onetrainer = json.loads((run_dir / "results" / "exports" / "onetrainer_concepts.json").read_text())
    assert {Path(c["path"]): c["balancing"] for c in onetrainer} == {Path(p): float(r) for p, r in subsets.items()}


def test_html_report_shows_the_dataset_before_and_after(run_dir, tmp_path):
    report = json.loads((run_dir / "results" / "processing_report.json").read_text())
    distributions = report["summary"]["distributions"]
    assert sum(distributions["frames"]["shot_type"].values()) == sum(
        1 for r in report["results"] if r["analysis"])  # every analysed frame, once
    assert sum(distributions["training"]["lighting"].values()) == report["summary"]["training_images"]
    assert distributions["training"]["occlusion"].get("synthetic", 0) == report["summary"]["curation"][
        "images_by_strategy"]["create_occlusion"]
    page = (run_dir / "results" / "report.html").read_text()
    # Charts and contact sheets are inline: the page needs no other file to show them.
    assert page.count("<svg") == 5 and page.count("src='data:image/jpeg;base64,") >= 8
    for strategy in STRATEGIES:
        assert f"<h3>{strategy} (" in page
    times = page.split("id='stage-times'")[1].split("</table>")[0]
    for stage in ("analyze", "decide", "keep_full", "masks", "inpaint", "select_dataset", "merge"):
        assert f"<tr><td>{stage}</td>" in times, stage
    assert "id='failures'>Failures (1)" in page and "zz broken.png" in page
    assert (run_dir / "results" / "review.html").read_text().count('"id": "') == 13
    # Snakemake's own report embeds it.
    import zipfile

    snakemake(run_dir, "--report", str(tmp_path / "report.zip"))
    assert any(name.endswith("/report.html") and "/data/raw/" in name
               for name in zipfile.ZipFile(tmp_path / "report.zip").namelist())


def test_tune_target_proposes_thresholds_in_a_new_file(run_dir):
    users = REPO / "config" / "decision_thresholds.yaml"
    before = users.read_bytes()
    snakemake(run_dir, "tune")
    tuned_path = run_dir / "results" / "tuning" / "decision_thresholds.yaml"
    tuned = yaml.safe_load(tuned_path.read_text())
    assert tuned["tuning"]["frames"] == 12  # the broken frame has no analysis to tune on
    assert tuned["tuning"]["distance"] <= tuned["tuning"]["previous_distance"]
    assert users.read_bytes() == before
    # The proposal is a decision file the workflow accepts as is.
    snakemake(run_dir, "-n", "--config", f"decision_thresholds={tuned_path}")


def test_model_jobs_log_a_one_line_command_that_names_their_parameters_file(run_dir):
    """The frames and settings of a model job are in a file it reads, not inline JSON in the log."""
    result = snakemake(run_dir, "-n", "--forcerun", "masks", "inpaint")
    commands = [line for line in (result.stdout + result.stderr).splitlines() if "frameloom.model_step" in line]
    assert commands
    for command in commands:
        assert "--params results/params/" in command and "{" not in command and len(command) < 400, command
        params = json.loads((run_dir / command.split("--params ")[1].split()[0]).read_text())
        assert set(params) == {"members", "settings"} and params["members"]


def test_nothing_to_do_on_an_unchanged_rerun(run_dir):
    result = snakemake(run_dir, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_frame_reruns_only_its_chain(run_dir):
    before = snapshot(run_dir / "results")
    report = json.loads((run_dir / "results" / "processing_report.json").read_text())
    # A segmented frame: its batch-mates are served from the cache, byte- and mtime-identical.
    target = next(r for r in report["results"] if r["strategy"] == "segment" and r["success"])
    frame_file = run_dir / "frames" / target["frame"]
    image = read_image(frame_file)
    image[:20, :20] = 255 - image[:20, :20]
    write_image(frame_file, image)

    snakemake(run_dir)
    after = snapshot(run_dir / "results")
    frame = target["frame_id"]
    # The frame's batches of each step it goes through: its batch-mates there rerun their exports.
    manifests = [p for p in (run_dir / "results" / "steps").glob("*/*.json")
                 if frame in json.loads(p.read_text())["frames"]]
    assert {p.parent.name for p in manifests} == {"masks", "inpaint"}
    batch_mates = sorted({f for p in manifests for f in json.loads(p.read_text())["frames"]} - {frame})

    def owner(path):
        return next((f for f in [frame, *batch_mates] if f"/{f}" in f"/{path}" or Path(path).name.startswith(f)), None)

    changed = {path for path in after if path not in before or before[path][0] != after[path][0]}
    # The decide checkpoint rewrites only decision files that changed: the others keep their mtime.
    aggregates = {path for path in changed if path.startswith(("training/", ".cache/", "curation/", "rejected/",
                                                                "decisions/", "exports/", "logs/", "steps/", "params/"))
                  } | {"plan.tsv", "processing_report.json", "report.html", "review.html"}
    assert all(after[p] == before[p] for p in before
               if p.startswith("decisions/") and p.endswith(".json") and owner(p) != frame)
    assert f"analysis/{frame}.json" in changed and f"segment/images/{frame}_character.png" in changed
    assert {p for p in changed - aggregates if owner(p) != frame} == {
        p for p in changed - aggregates if owner(p) in batch_mates}, "only this frame and its batch-mates moved"
    # Batch-mates are served from the cache: identical bytes, and not recomputed.
    for path in changed - aggregates:
        if owner(path) in batch_mates:
            assert after[path][1] == before[path][1], path
    for manifest in manifests:
        log = (run_dir / "results" / "logs" / manifest.parent.name / f"{manifest.stem}.log").read_text()
        mates = len(json.loads(manifest.read_text())["frames"]) - 1
        assert f"computed 1, from cache {mates}" in log, manifest


def job_counts(stderr: str) -> dict[str, int]:
    """{rule: jobs run} from Snakemake's log (checkpoint jobs included, which its first job table lacks)."""
    return dict(Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", stderr, flags=re.MULTILINE)))


def test_threshold_change_reruns_decisions_not_analysis(run_dir):
    before = snapshot(run_dir / "results")
    thresholds = yaml.safe_load((REPO / "config" / "decision_thresholds.yaml").read_text())
    # simple_background only steers decisions (good_lighting also tells curation which frames
    # need no colour correction, so changing it rightly recurates keep_full frames).
    thresholds["thresholds"]["simple_background"] = 0.02  # under some demo frames' complexity: they lose keep_full
    (run_dir / "config" / "decision_thresholds.yaml").write_text(yaml.safe_dump(thresholds))
    result = snakemake(run_dir)
    after = snapshot(run_dir / "results")
    analyses = [p for p in before if p.startswith("analysis/")]
    assert analyses and all(after[p] == before[p] for p in analyses)
    old = {r["frame_id"]: r["strategy"] for r in json.loads(before["processing_report.json"][1])["results"]}
    new = {r["frame_id"]: r["strategy"] for r in json.loads(after["processing_report.json"][1])["results"]}
    unchanged = [frame for frame in old if old[frame] == new[frame] and new[frame]]
    moved = sorted(frame for frame in old if old[frame] != new[frame])
    assert unchanged and moved
    # Only the decision files whose content changed are rewritten, those of the moved frames among them.
    decisions = {p: p.removeprefix("decisions/").removesuffix(".json") for p in before
                 if p.startswith("decisions/") and p.endswith(".json")}
    rewritten = {frame for p, frame in decisions.items() if after[p][0] != before[p][0]}
    assert rewritten == {frame for p, frame in decisions.items() if after[p][1] != before[p][1]}
    assert set(moved) <= rewritten and set(unchanged) - rewritten
    # Jobs: the decide step once, no analysis, and a strategy job only for a moved frame or a
    # batch-mate of one in a model batch that re-formed (its export relinks the cached files).
    counts = job_counts(result.stderr)
    assert counts["decide"] == 1 and "analyze" not in counts
    reformed = set()
    for manifest in (run_dir / "results").glob("steps/*/*.json"):
        path = str(manifest.relative_to(run_dir / "results"))
        if path not in before or before[path][1] != after[path][1]:
            reformed |= set(json.loads(manifest.read_text())["frames"])
    planned = {frame for frame in moved if new[frame]}
    strategy_jobs = sum(counts.get(name, 0) for name in ("keep_full", "create_occlusion", "segment", "enhance_segment"))
    assert strategy_jobs == len(planned | reformed), (counts, moved, reformed)
    # Frames that kept their strategy keep their strategy outputs: untouched, or (model strategies,
    # whose batches re-form around the frames that moved) relinked from the cache, same bytes.
    for frame in unchanged:
        meta = f"{new[frame]}/meta/{frame}.json"
        assert after[meta][1] == before[meta][1]
        if new[frame] in ("keep_full", "create_occlusion"):
            assert after[meta][0] == before[meta][0]
    # Frames that moved lose their old strategy's outputs.
    for frame in moved:
        if old[frame]:
            assert f"{old[frame]}/meta/{frame}.json" not in after


def test_lint_is_clean(run_dir):
    result = snakemake(run_dir, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_quick_start_demo_gets_every_frame_a_strategy(tmp_path):
    """The README's quick start (the workflow's own config: 24 demo frames) with only what the
    install carries (no weights folder: the packaged MTCNN finds the faces): every frame done,
    none excluded or failed, exit 0, and the summary names no excluded frame. The same run into
    another output folder makes the same training folder, byte for byte (seeds never come
    from a path)."""
    no_weights = f"models_dir={tmp_path / 'no-weights'}"
    result = snakemake(tmp_path, "--config", no_weights)
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    summary = report["summary"]
    assert (summary["total_frames"], summary["successful"], summary["failed"], summary["excluded"]) == (24, 24, 0, 0)
    analyses = [json.loads(path.read_text()) for path in (tmp_path / "results" / "analysis").glob("*.json")]
    assert len(analyses) == 24 and all(a["face_detector"].startswith("mtcnn (packaged") for a in analyses)
    tail = result.stdout[result.stdout.index("frameloom summary"):]
    assert "frames 24: 24 done, 0 failed\n" in tail and "excluded" not in tail, tail

    snakemake(tmp_path, "--config", no_weights, "output_dir=elsewhere")
    first, second = tmp_path / "results" / "training", tmp_path / "elsewhere" / "training"
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in files)


def test_demo_run_uses_generated_frames(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(
        {"input_dir": "demo", "demo": {"frames": 4, "width": 320, "height": 180}}))
    env_free = snakemake(tmp_path, "-n")
    assert "demo_frames" in env_free.stdout
    snakemake(tmp_path)
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    assert report["summary"]["total_frames"] == 4
    assert sorted(os.listdir(tmp_path / "results" / "demo" / "frames")) == [f"demo_{i:04d}.png" for i in range(4)]


def test_segment_with_sam2_and_lama_loads_each_model_once_per_batch(tmp_path):
    pytest.importorskip("sam2")
    pytest.importorskip("simple_lama_inpainting")
    from model_builders import save_mean_fill_lama, save_random_sam2

    models = tmp_path / "models"
    save_random_sam2(models / "segmentation" / "sam2_hiera_tiny.pt")
    save_mean_fill_lama(models / "inpainting" / "big-lama.pt")
    write_demo_set(tmp_path / "frames", 3, seed=11, width=256, height=144, truth_dir=tmp_path / "truth")
    strategies = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    for name in ("keep_full", "create_occlusion", "enhance_segment"):
        strategies["strategies"][name]["enabled"] = False
    strategies["strategies"]["segment"] |= {"segmentation_model": "sam2_hiera_tiny", "points_per_side": 4,
                                            "caption_model": "template"}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "strategy_configs.yaml").write_text(yaml.safe_dump(strategies))
    write_config(tmp_path, models_dir=str(models), strict_models=True, device="cpu")
    snakemake(tmp_path)

    # Each model in its own step: every job loads its one model once, whatever its batch holds.
    for step, model in (("masks", "sam2:sam2_hiera_tiny"), ("inpaint", "lama")):
        logs = [p.read_text() for p in (tmp_path / "results" / "logs" / step).glob("*.log")]
        assert sum(int(re.search(r"frames: (\d+) \(computed \1, from cache 0, failed 0\)", log)[1])
                   for log in logs) == 3
        assert all(f"model loads: {model} x1" in log for log in logs), step
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    assert [r["strategy"] for r in report["results"]] == ["segment"] * 3
    for result in report["results"]:
        frame = result["frame_id"]
        character = read_image(tmp_path / "results/segment/images" / f"{frame}_character.png", keep_alpha=True)
        assert character.shape[2] == 4
        assert (tmp_path / "results/segment/images" / f"{frame}_background.png").is_file()
        assert result["backends"][f"results/segment/images/{frame}_character.png"] == "sam2:sam2_hiera_tiny"
        # Random weights find no character: reported as such, never a wrong cut-out in training.
        assert result["success"] or result["error"].startswith("NoCharacterFound: ")


def test_vlm_captions_in_the_workflow(tmp_path, tiny_qwen_vl):
    """A Qwen2-VL folder at model_paths.qwen2_vl: caption jobs run, their captions reach the training folder.
    (The tiny model sits in a folder of its own: the default one must hold the pinned snapshot.)"""
    models = faces_only_models_dir(tmp_path)
    (models / "vlm").mkdir()
    (models / "vlm" / "tiny-qwen2-vl").symlink_to(tiny_qwen_vl["qwen2_vl"])
    write_demo_set(tmp_path / "frames", 5, seed=3, width=192, height=108, truth_dir=tmp_path / "truth")
    strategies = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    for name in ("segment", "enhance_segment"):
        strategies["strategies"][name]["enabled"] = False
    strategies["captioning"] |= {"frames_per_job": 2, "batch_size": 4, "max_new_tokens": 8}
    strategies["model_paths"]["qwen2_vl"] = "vlm/tiny-qwen2-vl"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "strategy_configs.yaml").write_text(yaml.safe_dump(strategies))
    # 192x108 frames have faces under the default 64 px: the whole frames must survive curation, or
    # no real image is left for the occlusion variants to stand beside (the synthetic cap).
    write_config(tmp_path, models_dir=str(models), strict_models=True, device="cpu",
                 curation={"quality_filters": {"min_face_size": 0}})
    snakemake(tmp_path)

    manifests = sorted((tmp_path / "results" / "captions" / "batches").glob("*.json"))
    # 5 frames in batches of about 2 (at most 4): each a job with one model load.
    assert 2 <= len(manifests) <= 5
    records = {}
    for manifest in manifests:
        records |= json.loads(manifest.read_text())["images"]
        log = tmp_path / "results" / "logs" / "captions" / f"{manifest.stem}.log"
        assert log.read_text().count("loaded ") == 1
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    summary = report["summary"]["captions"]
    assert summary["captioner"] == f"qwen2_vl ({models / 'vlm' / 'tiny-qwen2-vl'})"
    assert sum(summary["sources"].values()) == report["summary"]["produced_images"] == len(records)
    assert summary["sources"].get("template", 0) == sum(summary["rejected"].values())
    training = tmp_path / "results" / "training"
    kept = {r["image"] for r in json.loads((tmp_path / "results/curation/selection.json").read_text())["kept"]}
    assert kept
    for image, record in records.items():
        if image not in kept:  # removed by the curation
            continue
        stem = f"{Path(image).parts[1]}__{Path(image).stem}"
        caption_file = next(training.glob(f"*/{stem}.txt"))
        caption = caption_file.read_text().strip()
        assert caption == record["caption"]
        for variant in caption_file.parent.glob(f"{stem}_aug*.txt"):  # augmented variants keep their source's caption
            assert variant.read_text().strip() == caption
        assert caption.startswith(f"{TRIGGER}, a 3d animated character, pixar style, ")
        if record["source"] == "qwen2_vl":
            template = (tmp_path / image.replace("/images/", "/captions/")).with_suffix(".txt").read_text().strip()
            assert caption != template
            if "_occ" in image:  # the occlusion actually applied stays a fact of the caption
                assert any(d in caption for d in strategies["strategies"]["create_occlusion"]["occlusion_descriptions"])
    result = next(r for r in report["results"] if r["caption_sources"])
    assert set(result["caption_sources"].values()) <= {"qwen2_vl", "template (rejected: empty)",
                                                       "template (rejected: too_long)",
                                                       "template (rejected: repeated_phrase)"}

    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(tmp_path, "-n"))
    # A new prompt reruns the caption jobs (their parameters files first) and the merge only.
    strategies["captioning"]["prompts"] = {"character": "Describe the character."}
    (tmp_path / "config" / "strategy_configs.yaml").write_text(yaml.safe_dump(strategies))
    dry = snakemake(tmp_path, "-n", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout, re.MULTILINE))
    assert {rule for rule in counts if rule != "total"} == {"job_parameters", "caption_batch", "merge", "html_report",
                                                            "all"}, dry.stdout
