"""Template captions, VLM answer checks and the caption step with a stand-in captioner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frameloom import caption_step, captions
from frameloom.analysis import analyze_file
from frameloom.config import load_run_config
from frameloom.decision import decide_all
from frameloom.demo import write_demo_set
from frameloom.imageio import write_image, write_json
from frameloom.layout import frame_outputs, strategy_outputs
from frameloom.model_step import run_frame_steps
from frameloom.stepcache import frame_entries
from frameloom.strategies import EXPORTERS, execute, export

REPO = Path(__file__).resolve().parents[1]
TRIGGER, PREFIX = "luca", "a 3d animated character, pixar style"
ANALYSIS = {"ok": True, "shot_type": "far", "instance_count": 3, "complexity": 0.6, "lighting": 0.4,
            "brightness_mean": 0.2, "width": 400, "foreground_box": [20, 10, 60, 100], "sharpness": 0.9,
            "noise": 0.0, "lighting_parts": {"local_consistency": 0.8, "dynamic_range": 0.9}}


def solid(bgr, size=(40, 60)) -> np.ndarray:
    return np.full((*size, 3), bgr, np.uint8)


def test_scene_tags_come_from_the_analysis():
    assert captions.scene_tags(ANALYSIS) == [
        "far shot", "three characters", "character on the left", "detailed background",
        "low-key lighting", "dim lighting"]
    busy_bright = {**ANALYSIS, "complexity": 0.9, "brightness_mean": 0.8, "lighting": 0.9, "instance_count": 1,
                   "foreground_box": [300, 0, 60, 100], "sharpness": 0.1, "noise": 0.8}
    assert captions.scene_tags(busy_bright) == [
        "far shot", "character on the right", "busy background", "high-key lighting", "well-lit",
        "soft focus", "film grain"]
    # A cut-out shows no background: only what the character itself shows.
    assert captions.scene_tags(busy_bright, with_background=False) == ["far shot", "soft focus", "film grain"]
    assert captions.scene_tags({"ok": False}) == []


def test_palette_names_dominant_colours_and_cast():
    assert captions.palette_tags(solid((200, 60, 20))) == ["blue tones", "cool lighting"]
    two = np.concatenate([solid((200, 60, 20)), solid((20, 120, 230))], axis=1)
    assert captions.palette_tags(two)[0] in ("blue and orange tones", "orange and blue tones")
    assert captions.palette_tags(solid((128, 128, 128))) == ["muted colors"]
    warm = captions.palette_tags(solid((40, 180, 230)))
    assert "warm lighting" in warm and warm[0] in ("orange tones", "yellow tones")
    # A cut-out: only the opaque (character) pixels count, not the grey backdrop.
    cutout = np.dstack([solid((128, 128, 128)), np.zeros((40, 60), np.uint8)])
    cutout[10:30, 20:40, :3] = (30, 30, 220)
    cutout[10:30, 20:40, 3] = 255
    assert captions.palette_tags(cutout)[0] == "red tones"


def test_template_captions_trigger_first_and_facts_last():
    caption = captions.template_caption(captions.CHARACTER, TRIGGER, PREFIX, ANALYSIS, ["partially obscured"],
                                        solid((200, 60, 20)))
    assert caption == (f"{TRIGGER}, {PREFIX}, far shot, three characters, character on the left, detailed background, "
                       "low-key lighting, dim lighting, blue tones, cool lighting, partially obscured")
    facts = captions.background_facts(", environment only, no characters", other_characters=0)
    plate = captions.template_caption(captions.BACKGROUND, TRIGGER, PREFIX, ANALYSIS, facts)
    assert plate == ("3d animated scene, detailed background, low-key lighting, dim lighting, "
                     "environment only, no characters")
    assert TRIGGER not in plate
    with_others = captions.background_facts(", environment only, no characters", other_characters=2)
    assert with_others == ["environment only", "2 other characters"]
    assert captions.compose("a, b", ["B", "c"], "", None) == "a, b, c"


@pytest.mark.parametrize(("answer", "style", "cleaned"), [
    ("  Tags: girl, red dress,\n standing.  ", "tags", "girl, red dress, standing"),
    ("luca, smiling, Luca", "tags", "smiling"),
    ("A girl in a red dress stands in a forest.", "sentence", "A girl in a red dress stands in a forest."),
    ("Caption:\nA girl\nsmiles", "sentence", "A girl smiles"),
])
def test_clean_vlm_text(answer, style, cleaned):
    assert captions.clean_vlm_text(answer, style, TRIGGER) == cleaned


@pytest.mark.parametrize(("text", "reason"), [
    ("", captions.REJECT_EMPTY),
    ("girl, " * 80 + "end", captions.REJECT_TOO_LONG),
    ("girl, red dress, Girl", captions.REJECT_REPEATED),
    ("a girl in a red dress and a girl in a red dress", captions.REJECT_REPEATED),
    ("girl, red dress, standing, forest, soft light", None),
    ("A girl in a red dress stands in a forest, smiling at the camera.", None),
])
def test_check_vlm_text(text, reason):
    assert captions.check_vlm_text(text, max_chars=300) == reason


def test_vlm_caption_keeps_head_and_facts():
    text = "girl, smiling, three-quarter view"
    assert captions.vlm_caption(captions.CHARACTER, TRIGGER, PREFIX, text, ["isolated character"]) == (
        f"{TRIGGER}, {PREFIX}, girl, smiling, three-quarter view, isolated character")
    plate = captions.vlm_caption(captions.BACKGROUND, TRIGGER, PREFIX, "forest, river", ["environment only"])
    assert plate == "3d animated scene, forest, river, environment only"


# ---------------------------------------------------------------------------
# Template captions on the demo set: they vary, not one string repeated.


@pytest.fixture(scope="module")
def demo_captions(tmp_path_factory):
    """Every training caption the four strategies write for the 24 demo frames (classical backends)."""
    root = tmp_path_factory.mktemp("demo")
    run = load_run_config({"models_dir": str(root / "no-models")}, REPO)
    frames = write_demo_set(root / "frames", 24, seed=7, width=640, height=360)
    analyses = {}
    for frame_path in frames:
        frame = Path(frame_path).stem
        analyses[frame] = root / "analysis" / f"{frame}.json"
        write_json(analyses[frame], analyze_file(frame_path, frame, Path(frame_path).name))
    decisions = decide_all([json.loads(path.read_text()) for path in analyses.values()], run.decision,
                           run.enabled_strategies)
    texts = []
    for frame_path in frames:
        frame = Path(frame_path).stem
        strategy = decisions[frame]["strategy"]
        if strategy is None:  # excluded by the frame gate: no outputs, no captions
            continue
        outputs = frame_outputs(strategy_outputs(str(root / "out"), strategy, run.strategy_cfg(strategy)), frame)
        settings = run.strategy_settings(frame, strategy)
        if strategy not in EXPORTERS:
            meta = execute(strategy, str(frame_path), str(analyses[frame]), outputs, settings)
            texts += [Path(e["caption"]).read_text().strip() for e in meta["outputs"] if e["train"] and e["caption"]]
            continue
        manifests = run_frame_steps(strategy, frame, str(frame_path), str(analyses[frame]), run, str(root / "cache"),
                                    str(root / "steps"))
        entries, error = frame_entries(frame, manifests, str(root / "cache"))
        assert error is None, error
        meta = export(strategy, str(frame_path), str(analyses[frame]), outputs, settings, entries)
        texts += [Path(e["caption"]).read_text().strip() for e in meta["outputs"] if e["train"] and e["caption"]]
    return texts


def test_demo_template_captions_vary(demo_captions):
    distinct = len(set(demo_captions)) / len(demo_captions)
    print(f"\n{len(set(demo_captions))} distinct captions for {len(demo_captions)} training images ({distinct:.2f})")
    assert len(demo_captions) >= 24
    assert distinct >= 0.75  # demo frames share a plain backdrop and palette: a few repeats are honest


def test_demo_captions_follow_the_kohya_rules(demo_captions):
    for caption in demo_captions:
        tags = caption.split(", ")
        assert all(tags) and len(tags) == len({t.lower() for t in tags}), caption
        if caption.startswith(captions.BACKGROUND_SUBJECT):
            assert "frmlm_character" not in caption and "environment only" in caption
        else:
            assert tags[0] == "frmlm_character" and caption.startswith(f"frmlm_character, {PREFIX}, ")


# ---------------------------------------------------------------------------
# The caption step with a stand-in captioner: checks, framing, cache, counts.


class ScriptedCaptioner:
    """Answers from a script, one per image in call order; counts calls."""

    name, device = "scripted", "cpu"

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def caption(self, images, prompt):
        self.calls.append((len(images), prompt))
        return [self.answers.pop(0) for _ in images]


def caption_settings(**captioning):
    run = load_run_config({}, REPO)
    settings = run.caption_settings()
    settings["captioning"] = {**settings["captioning"], **captioning}
    return settings


def write_meta(root: Path, frame: str, entries: list[tuple[str, str, list[str]]]) -> str:
    outputs = []
    for name, subject, facts in entries:
        image, caption = root / f"{frame}_{name}.png", root / f"{frame}_{name}.txt"
        write_image(image, solid((10 * len(outputs), 100, 200), size=(32, 48)))
        caption.write_text(f"template for {name}\n")
        outputs.append({"image": str(image), "caption": str(caption), "role": name, "backend": "x", "train": True,
                        "subject": subject, "facts": facts})
    meta = root / f"{frame}.json"
    write_json(meta, {"frame": frame, "strategy": "segment", "outputs": outputs})
    return str(meta)


def test_caption_step_checks_frames_and_caches(tmp_path):
    members = {
        "a": write_meta(tmp_path, "a", [("character", "character", ["isolated character"]),
                                        ("background", "background", ["environment only"])]),
        "b": write_meta(tmp_path, "b", [("full", "character", []), ("occ", "character", ["partially obscured"])]),
    }
    settings = caption_settings(batch_size=2, max_caption_chars=60)
    scripted = ScriptedCaptioner([
        "Forest and river at dusk",          # a background: its own prompt, so its own call
        "girl, smiling, side view",          # a character
        "dress, dress, dress",               # b full: repeated tag
        "",                                  # b occ: empty
    ])
    records = caption_step.run_captions(members, settings, str(tmp_path / "cache"), str(tmp_path / "m.json"),
                                        str(tmp_path / "log"), captioner=scripted)
    by_name = {Path(image).stem: record for image, record in records.items()}
    assert by_name["a_character"]["caption"] == (
        f"frmlm_character, {PREFIX}, girl, smiling, side view, isolated character")
    assert by_name["a_background"]["caption"] == "3d animated scene, Forest and river at dusk, environment only"
    assert by_name["b_full"] | {"key": None} == {"caption": "template for full", "source": "template",
                                                 "rejected": "repeated_phrase", "answer": "dress, dress, dress",
                                                 "key": None}
    assert by_name["b_occ"]["rejected"] == "empty" and by_name["b_occ"]["caption"] == "template for occ"
    # One prompt per call, at most 2 images per call.
    prompts = settings["captioning"]["prompts"]
    instruction = settings["captioning"]["style_instructions"]["tags"]
    assert scripted.calls == [(1, f"{prompts['background']} {instruction}"),
                              (2, f"{prompts['character']} {instruction}"),
                              (1, f"{prompts['character']} {instruction}")]
    assert json.loads((tmp_path / "m.json").read_text())["images"] == json.loads(json.dumps(records))

    # Same inputs again: everything from the cache, the captioner never called.
    again = ScriptedCaptioner([])
    assert caption_step.run_captions(members, settings, str(tmp_path / "cache"), str(tmp_path / "m2.json"),
                                     str(tmp_path / "log"), captioner=again) == records
    assert again.calls == []
    # A changed prompt is a new key: captioned again.
    changed = ScriptedCaptioner(["x"] * 4)
    caption_step.run_captions(members, caption_settings(batch_size=2, prompts={
        "character": "Describe.", "background": "Describe the place."}), str(tmp_path / "cache"),
        str(tmp_path / "m3.json"), str(tmp_path / "log"), captioner=changed)
    assert sum(n for n, _ in changed.calls) == 4
    # The merge keeps the entries the current manifest names and drops the earlier prompts'.
    from frameloom.pruning import prune_cache

    current = json.loads((tmp_path / "m3.json").read_text())["images"].values()
    removed = prune_cache(str(tmp_path / "cache"), {f"captions/{record['key']}" for record in current})
    assert sorted(removed) == sorted(str(tmp_path / "cache" / "captions" / record["key"])
                                     for record in records.values())
    assert len(list((tmp_path / "cache" / "captions").glob("*/record.json"))) == 4


def test_caption_step_names_generation_errors(tmp_path):
    members = {"a": write_meta(tmp_path, "a", [("full", "character", [])])}

    class Failing(ScriptedCaptioner):
        def caption(self, images, prompt):
            raise RuntimeError("CUDA out of memory")

    records = caption_step.run_captions(members, caption_settings(), str(tmp_path / "cache"),
                                        str(tmp_path / "m.json"), str(tmp_path / "log"), captioner=Failing([]))
    (record,) = records.values()
    assert record["source"] == "template" and record["rejected"] == "generation_error"
    assert record["error"] == "RuntimeError: CUDA out of memory"
    assert not list((tmp_path / "cache").glob("captions/*/record.json")), \
        "a failed answer is retried next run, not cached"
    assert "generation failed for 1 images" in (tmp_path / "log").read_text()


def test_vlm_input_drops_alpha_and_bounds_pixels(tmp_path):
    image = np.dstack([solid((10, 20, 30), size=(300, 400)), np.full((300, 400), 255, np.uint8)])
    write_image(tmp_path / "c.png", image)
    rgb = caption_step.vlm_input(str(tmp_path / "c.png"), max_pixels=3136)
    assert rgb.shape[2] == 3 and rgb.shape[0] * rgb.shape[1] <= 3136
    assert tuple(rgb[0, 0]) == (30, 20, 10)


def test_a_captioner_that_does_not_load_leaves_the_templates_and_says_why(tmp_path):
    """Damaged weights (a config.json over truncated shards, ...): the job still writes its
    manifest, every image keeps its template with the load error named, nothing is cached."""
    members = {"a": write_meta(tmp_path, "a", [("full", "character", []), ("plate", "background", [])])}
    settings = caption_settings()
    settings["model"] = {**settings["model"], "path": str(tmp_path / "damaged"), "present": True}
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "config.json").write_text('{"model_type": "qwen2_vl"')
    records = caption_step.run_captions(members, settings, str(tmp_path / "cache"), str(tmp_path / "m.json"),
                                        str(tmp_path / "log"))
    assert len(records) == 2 and (tmp_path / "m.json").is_file()
    for record in records.values():
        assert record["source"] == "template" and record["rejected"] == captions.REJECT_LOAD
        assert record["caption"].startswith("template for ") and record["error"]
    assert not list((tmp_path / "cache").glob("captions/*/record.json"))
    assert "the captioner did not load" in (tmp_path / "log").read_text()
