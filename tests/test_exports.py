"""Per-strategy repeats and the trainer configs (kohya sd-scripts, OneTrainer)."""

from __future__ import annotations

import json

import pytest
import tomllib

from frameloom.exports import balanced_repeats, concept_of, kohya_dataset_toml, onetrainer_concepts, plan_concepts

TARGETS = {"keep_full": 0.30, "segment": 0.40, "create_occlusion": 0.15, "enhance_segment": 0.15}


def effective_mix(images, repeats):
    total = sum(images[s] * r for s, r in repeats.items())
    return {s: images[s] * r / total for s, r in repeats.items()}


@pytest.mark.parametrize("images", [
    {"keep_full": 30, "segment": 9, "create_occlusion": 36, "enhance_segment": 6},  # the demo's mix
    {"keep_full": 400, "segment": 250, "create_occlusion": 900, "enhance_segment": 60},
])
def test_balanced_repeats_bring_the_effective_mix_to_the_targets(images):
    repeats = balanced_repeats(images, TARGETS, base=10)
    raw = {s: n / sum(images.values()) for s, n in images.items()}
    mix = effective_mix(images, repeats)
    for strategy, target in TARGETS.items():
        assert abs(mix[strategy] - target) < 0.03, (strategy, mix, repeats)
        assert abs(mix[strategy] - target) <= abs(raw[strategy] - target) + 1e-9
    # The total exposure stays about base x images (nearest-integer rounding).
    total = sum(images[s] * r for s, r in repeats.items())
    assert abs(total - 10 * sum(images.values())) / (10 * sum(images.values())) < 0.05


def test_repeats_never_drop_below_one_and_missing_strategies_get_no_folder():
    repeats = balanced_repeats({"keep_full": 1000, "segment": 1, "create_occlusion": 0, "enhance_segment": 0},
                               {**TARGETS, "keep_full": 0.01}, base=1)
    assert set(repeats) == {"keep_full", "segment"} and min(repeats.values()) == 1
    # Targets are renormalised over the strategies present: segment carries 0.40 / 0.41 of the mix.
    assert repeats["segment"] == round(1001 * 0.40 / 0.41)


def records(counts):
    return [{"strategy": s, "curated": f"{s}__{i}.png"} for s, n in counts.items() for i in range(n)]


def test_concepts_name_kohya_folders_and_report_the_effective_share():
    concepts = plan_concepts(records({"keep_full": 30, "segment": 9}), "luca", 10, TARGETS, balance=True,
                             max_repeats=30)
    # 390 exposures: keep_full 390 x 0.3/0.7 / 30 = 5.57 -> 6, segment 390 x 0.4/0.7 / 9 = 24.8 -> 25.
    assert sorted(concepts) == ["25_luca_segment", "6_luca_keep_full"]
    assert concepts["25_luca_segment"] == {"strategy": "segment", "repeats": 25, "wanted_repeats": 25, "images": 9,
                                           "target": round(0.40 / 0.70, 4), "effective_share": round(225 / 405, 4),
                                           "shortfall": 0.0}
    assert concept_of(concepts, "segment") == "25_luca_segment"
    single = plan_concepts(records({"keep_full": 30, "segment": 9}), "luca", 10, TARGETS, balance=False)
    assert list(single) == ["10_luca"] and concept_of(single, "segment") == "10_luca"


def test_trainer_configs_name_the_folders_and_turn_flips_off(tmp_path):
    concepts = plan_concepts(records({"keep_full": 3, "create_occlusion": 5}), "luca", 10, TARGETS, balance=True)
    kohya = tomllib.loads(kohya_dataset_toml(str(tmp_path / "training"), concepts, 768))
    assert kohya["general"]["flip_aug"] is False and kohya["general"]["color_aug"] is False
    assert kohya["general"]["keep_tokens"] == 1 and kohya["datasets"][0]["resolution"] == 768
    assert {s["image_dir"]: s["num_repeats"] for s in kohya["datasets"][0]["subsets"]} == {
        str((tmp_path / "training" / name).resolve()): c["repeats"] for name, c in concepts.items()}
    onetrainer = onetrainer_concepts(str(tmp_path / "training"), concepts)
    assert json.loads(json.dumps(onetrainer)) == onetrainer
    for concept in onetrainer:
        assert (concept["balancing_strategy"] == "REPEATS"
                and concept["balancing"] == concepts[concept["name"]]["repeats"])
        assert not any(v for k, v in concept["image"].items() if k.startswith(("enable_random", "enable_fixed")))
        assert concept["text"]["prompt_source"] == "sample"
    assert onetrainer == onetrainer_concepts(str(tmp_path / "training"), concepts), "deterministic"


def test_repeats_are_capped_and_the_shortfall_is_reported():
    """Three images would need 288 repeats to make 30% of an epoch: capped at 2 x base, and short."""
    counts = {"keep_full": 3, "segment": 78, "create_occlusion": 196, "enhance_segment": 11}
    concepts = plan_concepts(records(counts), "hero", 15, TARGETS, balance=True)
    by_strategy = {c["strategy"]: c for c in concepts.values()}
    assert max(c["repeats"] for c in concepts.values()) <= 30
    keep = by_strategy["keep_full"]
    assert keep["wanted_repeats"] > 200 and keep["repeats"] == 30
    assert keep["shortfall"] == round(keep["target"] - keep["effective_share"], 4) > 0.2
    assert by_strategy["create_occlusion"]["shortfall"] == 0.0  # not capped: no shortfall of its own
    assert plan_concepts(records(counts), "hero", 15, TARGETS, balance=True, max_repeats=1000)[
        f"{keep['wanted_repeats']}_hero_keep_full"]["shortfall"] == 0.0

