"""The Qwen2-VL adapter on tiny random-weight checkpoints, loaded through the real from_pretrained path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frameloom import caption_step
from frameloom.config import load_run_config
from frameloom.demo import FrameSpec, render_frame
from frameloom.imageio import write_image, write_json

pytest.importorskip("torch")
pytest.importorskip("transformers")

from frameloom.vlm_backend import QwenVLCaptioner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames():
    """Three generated frames of different sizes (RGB)."""
    return [render_frame(FrameSpec(seed=seed, width=w, height=h))[0][..., ::-1].copy()
            for seed, (w, h) in enumerate([(160, 90), (96, 128), (128, 128)])]


@pytest.mark.parametrize("model_type", ["qwen2_vl", "qwen2_5_vl"])
def test_the_config_picks_the_model_class(tiny_qwen_vl, model_type, frames):
    captioner = QwenVLCaptioner(str(tiny_qwen_vl[model_type]), device="cpu", max_new_tokens=6)
    expected = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
    assert type(captioner.model).__name__ == expected[model_type]
    assert captioner.processor.tokenizer.padding_side == "left"
    answers = captioner.caption(frames, "Describe the character.")
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)


def test_batched_answers_equal_single_ones_and_repeat(tiny_qwen_vl, frames):
    """Left padding: an image captioned in a padded batch gets the answer it gets alone; greedy is deterministic."""
    captioner = QwenVLCaptioner(str(tiny_qwen_vl["qwen2_vl"]), device="cpu", max_new_tokens=8)
    batched = captioner.caption(frames, "Describe.")
    assert [captioner.caption([frame], "Describe.")[0] for frame in frames] == batched
    assert captioner.caption(frames, "Describe.") == batched
    # Generation is greedy and bounded: at most max_new_tokens new tokens per image.
    generate, seen = captioner.model.generate, []

    def recording_generate(**kwargs):
        out = generate(**kwargs)
        seen.append((kwargs["max_new_tokens"], kwargs["do_sample"], out.shape[1] - kwargs["input_ids"].shape[1]))
        return out

    captioner.model.generate = recording_generate
    captioner.caption(frames, "Describe.")
    (max_new, sampled, new_tokens), = seen
    assert (max_new, sampled) == (8, False) and new_tokens <= 8


def test_unknown_model_type_is_named(tmp_path, tiny_qwen_vl):
    folder = tmp_path / "llava"
    folder.mkdir()
    config = json.loads((tiny_qwen_vl["qwen2_vl"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}))
    assert config["model_type"] == "qwen2_vl"
    with pytest.raises(ValueError, match="model_type 'gpt2' is not one of"):
        QwenVLCaptioner(str(folder), device="cpu")


def test_caption_step_cli_loads_the_model_once(tmp_path, tiny_qwen_vl, frames):
    """The shell step's CLI on 2 frames x 2 images, batch size 3: one model load, every image captioned."""
    members = {}
    for index in range(2):
        outputs = []
        for name, frame in (("full", frames[index]), ("occ", frames[2])):
            image, caption = tmp_path / f"f{index}_{name}.png", tmp_path / f"f{index}_{name}.txt"
            write_image(image, frame[..., ::-1])
            caption.write_text("frmlm_character, template\n")
            outputs.append({"image": str(image), "caption": str(caption), "role": name, "backend": "x",
                            "train": True, "subject": "character", "facts": ["partially obscured"] * (name == "occ")})
        write_json(tmp_path / f"f{index}.json", {"frame": f"f{index}", "strategy": "keep_full", "outputs": outputs})
        members[f"f{index}"] = str(tmp_path / f"f{index}.json")
    run = load_run_config({"models_dir": str(tiny_qwen_vl["qwen2_vl"].parent),
                           "device": "cpu"}, REPO)
    settings = run.caption_settings()
    settings["model"] = {**settings["model"], "path": str(tiny_qwen_vl["qwen2_vl"]), "present": True}
    settings["captioning"] |= {"batch_size": 3, "max_new_tokens": 6}
    (tmp_path / "params.json").write_text(json.dumps({"members": members, "settings": settings}))
    argv = ["--params", str(tmp_path / "params.json"), "--cache-dir", str(tmp_path / "c"),
            "--manifest", str(tmp_path / "m.json"), "--log", str(tmp_path / "log")]
    assert caption_step.main(argv) == 0
    records = json.loads((tmp_path / "m.json").read_text())["images"]
    assert len(records) == 4
    for record in records.values():
        assert record["answer"] is not None
        assert record["source"] in ("qwen2_vl", "template")
        if record["source"] == "qwen2_vl":
            assert record["caption"].startswith("frmlm_character, a 3d animated character, pixar style, ")
        else:
            assert record["caption"] == "frmlm_character, template" and record["rejected"]
    log = (tmp_path / "log").read_text()
    assert log.count("loaded Qwen2VLForConditionalGeneration") == 1
    # Again: all from the cache, no model load at all.
    assert caption_step.main(argv) == 0
    assert "loaded" not in (tmp_path / "log").read_text()
    assert json.loads((tmp_path / "m.json").read_text())["images"] == records
