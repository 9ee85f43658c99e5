"""The registries: each strategy and model step described once, and the code and config keyed to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from frameloom import layout, strategies
from frameloom.config import load_run_config
from frameloom.registry import MODEL_STEPS, STRATEGIES, STRATEGY_REGISTRY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run_config({"input_dir": "demo"}, tmp_path_factory.mktemp("run"), workflow_dir=REPO)


def test_each_strategy_has_its_code_once():
    in_process = {name for name, spec in STRATEGY_REGISTRY.items() if not spec.uses_models}
    assert set(strategies.EXECUTORS) == in_process
    assert set(strategies.EXPORTERS) == set(STRATEGIES) - in_process


@pytest.mark.parametrize("name", STRATEGIES)
def test_outputs_lie_in_the_strategy_folder_and_are_distinct(run, name):
    outputs = layout.strategy_outputs("OUT", name, run.strategy_cfg(name))
    paths = [p for pattern in outputs.values() for p in (pattern if isinstance(pattern, list) else [pattern])]
    assert all(p.startswith(f"OUT/{name}/") and "{frame}" in p for p in paths)
    assert len(set(paths)) == len(paths) and outputs["meta"] == layout.strategy_meta("OUT", name)
    images = [p for p in paths if p.endswith(".png") and "/masks/" not in p]
    assert STRATEGY_REGISTRY[name].images_per_frame(run.strategy_cfg(name)) <= len(images)


@pytest.mark.parametrize("name", [name for name, spec in STRATEGY_REGISTRY.items() if spec.uses_models])
def test_model_steps_chain_in_order(run, name):
    steps = run.frame_steps(name)
    assert steps and set(steps) <= set(MODEL_STEPS)
    for position, (step, source) in enumerate(steps.items()):
        assert source is None if position == 0 else source == list(steps)[position - 1], (step, source)


def test_every_model_step_serves_a_strategy_and_has_an_env(run):
    served = {step for name, spec in STRATEGY_REGISTRY.items() if spec.uses_models for step in run.frame_steps(name)}
    assert served == set(MODEL_STEPS)
    from frameloom.models import requirement_env

    for step, (strategy, keys, requirement) in MODEL_STEPS.items():
        assert strategy in STRATEGIES and set(keys) <= set(run.strategy_cfg(strategy)), step
        assert (REPO / "envs" / f"{requirement_env(requirement)}.yaml").is_file(), step


def _schema_enum(schema: dict, *path: str) -> list[str]:
    node = schema
    for part in path:
        node = node[part]
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].split("/")[-1]]
    return node["enum"]


def test_model_paths_defaults_are_the_registry_paths():
    import yaml

    from frameloom.models import MODEL_REGISTRY
    from frameloom.schema import load_schema

    schema_defaults = {key: spec["default"]
                       for key, spec in (
                           load_schema("strategy_configs")["properties"]["model_paths"]["properties"].items())}
    shipped = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())["model_paths"]
    assert shipped == schema_defaults
    assert {key: MODEL_REGISTRY[key].default_path for key in schema_defaults} == schema_defaults


def test_every_model_a_setting_can_name_is_in_the_registry():
    from frameloom.backends import CLASSICAL_INPAINTING, CLASSICAL_SEGMENTATION
    from frameloom.models import model_named
    from frameloom.schema import load_schema

    schema = load_schema("strategy_configs")
    blocks = schema["properties"]["strategies"]["properties"]
    names = {
        *_schema_enum(schema, "properties", "strategies", "properties", "segment", "properties", "segmentation_model"),
        *_schema_enum(schema, "properties", "strategies", "properties", "segment", "properties", "inpainting_model"),
        *_schema_enum(schema, "properties", "strategies", "properties", "enhance_segment", "properties",
                      "upscale_model"),
        *_schema_enum(schema, "properties", "strategies", "properties", "enhance_segment", "properties",
                      "face_enhance_model"),
        *_schema_enum(schema, "definitions", "caption_models"),
    } - {CLASSICAL_SEGMENTATION, CLASSICAL_INPAINTING, "lanczos", "template"}
    assert blocks and names
    for name in sorted(names):
        model_named(name)  # raises, naming the known models, for one the registry lacks


def test_models_run_in_their_steps_env_and_their_loaders_exist(run):
    import ast

    from frameloom.models import MODEL_REGISTRY, model_named

    requirements = run.model_requirements()
    for step, (_, _, requirement) in MODEL_STEPS.items():
        if requirement in requirements:
            assert model_named(requirements[requirement]["name"]).serves == requirement, step
    for model in MODEL_REGISTRY.values():
        assert model.env is None or (REPO / "envs" / f"{model.env}.yaml").is_file(), model.key
        module, name = model.loader.rsplit(".", 1)
        source = REPO / "scripts" / Path(*module.split(".")).with_suffix(".py")
        defined = {node.name for node in ast.parse(source.read_text()).body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert name in defined, model.loader
