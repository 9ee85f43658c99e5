"""The identity embedding: DINOv2 through transformers, loaded offline from a snapshot laid
out as the real one (tiny random weights), the batched embed step, and the curation
clustering by it (the classical signature named as the fallback without it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from frameloom.demo import FrameSpec, render_frame
from frameloom.embedding import DEFAULT_MODEL_DIR, EMBEDDER, MODEL_NAME, REQUIRED_FILES, embedding_input
from frameloom.imageio import read_json, write_image, write_json


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory) -> Path:
    """A random-weight DINOv2 snapshot, saved as the real one is (config, safetensors, preprocessor)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("models") / Path(DEFAULT_MODEL_DIR).name
    config = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, patch_size=14, image_size=56)
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(folder)
    transformers.BitImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                                   do_convert_rgb=True).save_pretrained(folder)
    assert {path.name for path in folder.iterdir()} >= set(REQUIRED_FILES)
    return folder


@pytest.fixture(scope="module")
def embedder(tiny_dinov2):
    from frameloom.embedding import ImageEmbedder

    return ImageEmbedder(tiny_dinov2, device="cpu", batch_size=2)


def cut_out(seed: int) -> np.ndarray:
    """A BGRA cut-out: a demo frame's centre, its alpha an ellipse."""
    frame = render_frame(FrameSpec(seed=seed, width=160, height=96))[0]
    alpha = np.zeros(frame.shape[:2], np.uint8)
    yy, xx = np.mgrid[:96, :160]
    alpha[((xx - 80) / 40.0) ** 2 + ((yy - 48) / 30.0) ** 2 <= 1.0] = 255
    return np.dstack([frame, alpha])


def test_loads_offline_and_embeds_unit_rows_independent_of_the_batch(embedder, tiny_dinov2):
    assert embedder.model_name == MODEL_NAME and embedder.device == "cpu" and embedder.dtype == "float32"
    images = [embedding_input(cut_out(seed)) for seed in range(5)]
    together = embedder.embed(images)
    assert together.shape == (5, 32) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([embedder.embed([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_the_embedder_sees_the_character_on_grey_cropped_to_its_alpha():
    image = cut_out(1)
    seen = embedding_input(image)
    assert seen.shape == (61, 81, 3)  # the ellipse's bounding box
    assert tuple(seen[0, 0]) == (128, 128, 128)  # outside the ellipse: neutral grey
    opaque = image[..., :3]
    assert embedding_input(opaque) is opaque
    with pytest.raises(ValueError, match="empty"):
        embedding_input(np.zeros((8, 8, 4), np.uint8))


def curated_run(root: Path) -> tuple[Path, list[str]]:
    """An output folder with a plan and two frames' curated records (cut-outs, a plate, a whole frame)."""
    from frameloom import layout
    from frameloom.dataset import CURATED_RECORD

    root.mkdir(parents=True)
    (root / "plan.tsv").write_text("a\tsegment\nb\tkeep_full\nc\texcluded\n")
    cut_outs = []
    for frame, strategy, roles in (("a", "segment", ("character", "background")), ("b", "keep_full", ("frame",))):
        folder = Path(layout.curated(str(root), strategy).format(frame=frame))
        images = []
        for number, role in enumerate(roles):
            path = folder / f"{role}_{number}.png"
            write_image(path, cut_out(number) if role == "character" else cut_out(number)[..., :3])
            images.append({"curated": str(path), "role": role})
            if role == "character":
                cut_outs.append(str(path))
        write_json(folder / CURATED_RECORD, {"images": images})
    return root, cut_outs


def test_the_embed_step_embeds_the_cut_outs_and_the_references(tiny_dinov2, tmp_path):
    from frameloom.embed_step import main

    out, cut_outs = curated_run(tmp_path / "results")
    reference = tmp_path / "ref.png"
    write_image(reference, cut_out(3))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    output = tmp_path / "embeddings.json"
    assert main(["--plan", str(out / "plan.tsv"), "--out-dir", str(out), "--output", str(output),
                 "--model-dir", str(tiny_dinov2), "--references", str(reference), str(broken), "--device", "cpu",
                 "--batch-size", "2", "--log", str(tmp_path / "embed.log")]) == 0
    record = read_json(output)
    assert record["embedder"] == EMBEDDER and record["model"] == MODEL_NAME and record["device"] == "cpu"
    assert sorted(record["images"]) == cut_outs  # the cut-outs only: no plate, no whole frame
    assert list(record["references"]) == [str(reference)]
    assert list(record["errors"]) == [str(broken)]
    assert abs(np.linalg.norm(record["images"][cut_outs[0]]) - 1.0) < 1e-3
    log = (tmp_path / "embed.log").read_text()
    assert "1 cut-outs and 1 references embedded" in log and "1 unreadable" in log


def selection_with(embeddings, tmp_path, references=None):
    """select_dataset over six verified cut-outs of two looks; identity clusters them."""
    from frameloom.dataset import select_dataset
    from frameloom.imageio import write_json as write

    records = []
    for index in range(6):
        path = tmp_path / f"cut_{index}.png"
        write_image(path, cut_out(index % 2))
        records.append({"curated": str(path), "image": str(path), "role": "character", "strategy": "segment",
                        "frame": f"f{index}", "subject": "character", "failures": [], "quality": 1.0,
                        "phash": f"{index:016x}", "verification": {"verified": True, "reason": "face in mask"}})
    write(tmp_path / "curated.json", {"images": records})
    cfg = {"train_unverified": False, "dedup": {"enabled": False},
           "identity": {"enabled": True, "threshold": 0.7, "embedding_threshold": 0.6, "min_cluster_size": 2},
           "augmentation": {"enabled": False}, "target_size": [1, 100]}
    return select_dataset([str(tmp_path / "curated.json")], cfg, references or {"files": {}, "threshold": 0.73},
                          str(tmp_path / "aug"), embeddings)


def test_identity_clusters_by_the_embedding_when_it_ran(tmp_path):
    looks = {0: np.eye(8)[0], 1: np.eye(8)[1]}
    images = {str(tmp_path / f"cut_{i}.png"): list(looks[i % 2]) for i in range(6)}
    reference = str(tmp_path / "ref.png")
    embeddings = {"embedder": EMBEDDER, "model": MODEL_NAME, "device": "cpu", "images": images,
                  "references": {reference: list(looks[1])}, "errors": {}}
    selection = selection_with(embeddings, tmp_path, {"files": {reference: "x"}, "threshold": 0.73})
    identity = selection["identity"]
    assert identity["descriptor"] == f"{EMBEDDER} embedding ({MODEL_NAME}, cpu)"
    assert [len(cluster) for cluster in identity["clusters"]] == [3, 3]
    kept = {Path(r["curated"]).name for r in selection["kept"]}
    assert kept == {"cut_1.png", "cut_3.png", "cut_5.png"}, identity["reason"]


def test_without_the_embedding_the_classical_signature_is_the_named_fallback(tmp_path):
    from frameloom.backends import FALLBACK_MARK

    identity = selection_with(None, tmp_path)["identity"]
    assert identity["descriptor"].startswith("classical signature") and FALLBACK_MARK in identity["descriptor"]


OWN_FOLDER = "identity/tiny-dinov2"  # the default folder must hold the pinned snapshot


def own_folder_config(tmp_path: Path, models: Path) -> Path:
    """A project folder whose strategy config points model_paths.dinov2 at OWN_FOLDER."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    strategy = yaml.safe_load((repo / "config" / "strategy_configs.yaml").read_text())
    strategy["model_paths"]["dinov2"] = OWN_FOLDER
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "frames").mkdir(exist_ok=True)
    (tmp_path / "config" / "strategy_configs.yaml").write_text(yaml.safe_dump(strategy))
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(
        {"input_dir": "frames", "models_dir": str(models), "device": "cpu"}))
    return tmp_path


def test_the_embed_rule_runs_only_with_the_weights(tiny_dinov2, tmp_path):
    """RunConfig.identity_embedder: the default folder counts only with the whole pinned snapshot;
    a folder of the user's own with every file from_pretrained needs."""
    from frameloom.config import load_project_config

    models = tmp_path / "models"
    project = own_folder_config(tmp_path, models)
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(tiny_dinov2, models / DEFAULT_MODEL_DIR)  # random weights: not the pinned files
    default = load_project_config(tmp_path / "elsewhere", repo, {"models_dir": str(models)}).identity_embedder()
    assert not default["present"] and "pinned sha256" in default["why"]
    shutil.copytree(tiny_dinov2, models / OWN_FOLDER)
    embedder = load_project_config(project, repo).identity_embedder()
    assert embedder["present"] and embedder["path"] == str(models / OWN_FOLDER)
    (models / OWN_FOLDER / "model.safetensors").unlink()  # a half-finished download is no model
    assert load_project_config(project, repo).identity_embedder()["why"] == "missing model.safetensors"


@pytest.mark.slow
def test_the_workflow_embeds_the_cut_outs_before_the_identity_clusters(tiny_dinov2, tmp_path):
    """With DINOv2's weights present: one embed_cut_outs job, and select_dataset clusters by it."""
    import subprocess
    import sys

    from frameloom.demo import write_demo_set

    repo = Path(__file__).resolve().parents[1]
    models = tmp_path / "models"
    shutil.copytree(tiny_dinov2, models / OWN_FOLDER)
    write_demo_set(tmp_path / "frames", 4, seed=5, width=320, height=180)
    own_folder_config(tmp_path, models)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--cores", "2",
         "--directory", str(tmp_path), "--until", "select_dataset"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    embeddings = read_json(tmp_path / "results" / "curation" / "embeddings.json")
    selection = read_json(tmp_path / "results" / "curation" / "selection.json")
    assert embeddings["embedder"] == EMBEDDER and (tmp_path / "results" / "logs" / "embed_cut_outs.log").is_file()
    assert selection["identity"]["descriptor"].startswith(f"{EMBEDDER} embedding")
