"""Load and validate the three configuration files.

Each file is checked against its JSON schema in ``config/schemas/``, missing
keys take the schema defaults, and the first problem becomes a one-line
``ConfigError`` that names the file, the key and the rule that was broken, so
a run stops before any job starts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .registry import MODEL_STEPS, STRATEGIES, STRATEGY_REGISTRY
from .schema import ConfigError, read_yaml, validate

# A model job's memory request (RunConfig.job_memory_mb): this base, plus this many
# times the bytes of the weights it loads.
JOB_BASE_MB = 2000
WEIGHT_MEMORY_FACTOR = 2
TARGET_SUM_TOLERANCE = 0.01



# processing.frames_per_job "auto". On a GPU a frame takes about a second of model time
# (SAM2 automatic masks, LaMa) against several seconds to load SAM2-large, LaMa and
# CodeFormer: 64 frames keep the load near a tenth of the job. On the CPU a frame takes
# ~18 s (bench/model_steps.py), so 8 frames already dwarf the load and spread over the cores.
GPU_FRAMES_PER_JOB = 64
CPU_FRAMES_PER_JOB = 8


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated and with defaults filled in."""

    run: dict
    decision: dict
    strategy: dict
    workdir: Path
    # {frame id: override} from overrides_file (frameloom.overrides).
    overrides: dict = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return self.run["input_dir"] == "demo"

    @property
    def output_dir(self) -> str:
        return self.run["output_dir"].rstrip("/")

    @property
    def overrides_file(self) -> str:
        """The review page's overrides, as configured: by default in the run's output folder,
        so each run keeps its own review decisions."""
        return self.run["overrides_file"] or f"{self.output_dir}/overrides.yaml"

    @property
    def enabled_strategies(self) -> list[str]:
        return [name for name in STRATEGIES if self.strategy["strategies"][name]["enabled"]]

    def strategy_cfg(self, name: str) -> dict:
        return self.strategy["strategies"][name]

    def strategy_settings(self, frame_id: str, strategy: str) -> dict:
        """A strategy rule's params for one frame: only what that strategy reads, so
        unrelated edits (decision thresholds included) rerun none of its jobs."""
        settings = {
            "frame": frame_id,
            "strategy": self.strategy_cfg(strategy),
            "trigger_word": self.run["character"]["trigger_word"],
            "caption_prefix": self.strategy_cfg("keep_full")["caption_prefix"],
        }
        for other in STRATEGY_REGISTRY[strategy].reads:
            settings[other] = self.strategy_cfg(other)
        return settings

    def frame_steps(self, strategy: str) -> dict[str, str | None]:
        """The model steps a frame of ``strategy`` goes through, in order: {step: the step whose
        entry it continues, or None when it starts from the frame}."""
        return STRATEGY_REGISTRY[strategy].model_steps(self.strategy_cfg(strategy))

    def step_settings(self, step: str) -> dict:
        """What a model step reads (MODEL_STEPS): its keys of the strategy block, its model,
        the device, and the inference batch or the reference images where it uses them."""
        strategy, keys, requirement = MODEL_STEPS[step]
        cfg = self.strategy_cfg(strategy)
        model = self.model_requirements().get(requirement)
        settings = {"cfg": {key: cfg[key] for key in keys}, "models": {requirement: model} if model else {},
                    "device": self.run["device"]}
        if step == "restore_faces":
            settings["batch_size"] = self.strategy["processing"]["batch_size"]
        if step == "masks":
            settings["references"] = self.references()
        return settings

    def references(self) -> dict:
        """The target's reference images with content digests (editing one reruns the model steps)."""
        from .imageio import IMAGE_EXTENSIONS

        files = []
        for entry in self.run["character"]["reference_images"]:
            path = self.resolve(entry)
            files += (sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
                      if path.is_dir() else [path])
        return {
            "files": {str(p): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files},
            "threshold": self.run["character"]["reference_threshold"],
        }

    @property
    def model_frames_per_job(self) -> int:
        """Frames per segment/enhance_segment job: ``processing.frames_per_job``, or for ``auto``
        GPU_FRAMES_PER_JOB when the model steps will run on a GPU, else CPU_FRAMES_PER_JOB."""
        wanted = self.strategy["processing"]["frames_per_job"]
        if wanted != "auto":
            return wanted
        if not self.uses_gpu:
            return CPU_FRAMES_PER_JOB
        if self.run["device"] == "auto":
            # Asked where the workflow starts: set device to cuda on a cluster whose login node has no GPU.
            import torch

            return GPU_FRAMES_PER_JOB if torch.cuda.is_available() else CPU_FRAMES_PER_JOB
        return GPU_FRAMES_PER_JOB

    @property
    def uses_gpu(self) -> bool:
        """Model jobs reserve the `gpu` resource unless the run is pinned to the CPU."""
        return self.run["device"] != "cpu" and any(r["present"] for r in self.model_requirements().values())

    def model_requirements(self) -> dict[str, dict]:
        from .backends import model_requirements

        enhance = self.strategy_cfg("enhance_segment")
        segments = "segment" in self.enabled_strategies or (enhance["enabled"] and enhance["apply_segmentation"])
        return model_requirements(self.strategy_cfg("segment") if segments else None, self.strategy["model_paths"],
                                  self.resolve(self.run["models_dir"]), enhance)

    def job_memory_mb(self, model_paths: list[str | None]) -> int:
        """Memory a model job asks the scheduler for: a base for the interpreter, torch and
        frames, plus twice the weights it loads (the weights, and the activations and copies
        made while loading). Absent paths count nothing (a fallback runs instead)."""
        weights = 0
        for path in filter(None, map(Path, filter(None, model_paths))):
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
            weights += sum(p.stat().st_size for p in files)
        return JOB_BASE_MB + round(WEIGHT_MEMORY_FACTOR * weights / 2**20)

    def step_memory_mb(self, step: str) -> int:
        """``job_memory_mb`` of a model step's batch job: the model it loads, when present."""
        model = self.model_requirements().get(MODEL_STEPS[step][2])
        return self.job_memory_mb([model["path"] if model and model["present"] else None])

    def _snapshot(self, key: str, group: str, required: tuple[str, ...]) -> dict:
        """{path, present, why, stamp} of the multi-file model at ``model_paths[key]``.

        At its default place the pinned snapshot (frameloom.download's ``group``)
        must be complete, each file with its pinned size and sha256: a half-finished
        download is no model. A folder of the user's own (another size, a fine-tune)
        needs the ``required`` files and every shard its safetensors index lists.
        ``stamp``: names, sizes and mtimes of its files (new weights rerun its steps)."""
        from .download import snapshot_check
        from .models import MODEL_REGISTRY

        path = self.model_path(key)
        if path is None:
            return {"path": None, "present": False, "why": f"model_paths.{key} is empty", "stamp": ""}
        if self.strategy["model_paths"][key] == MODEL_REGISTRY[key].default_path:
            present, why = snapshot_check(group, self.resolve(self.run["models_dir"]))
        else:
            index = path / "model.safetensors.index.json"
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())) \
                if index.is_file() else []
            missing = [name for name in (*required, *shards) if not (path / name).is_file()]
            present = not missing
            why = f"missing {', '.join(missing)}" if missing else "the files from_pretrained needs are there (unpinned)"
        files = sorted(p for p in path.rglob("*") if p.is_file()) if present else []
        stamp = ";".join(f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        return {"path": str(path), "present": present, "why": why, "stamp": stamp}

    def captioner(self) -> dict:
        """The VLM folder the caption step asks for: {name, path, present, why, fingerprint}."""
        # (Its processor settings may be preprocessor_config.json or, saved by transformers 5, processor_config.json.)
        snapshot = self._snapshot("qwen2_vl", "qwen2_vl", ("config.json",))
        return {"name": "qwen2_vl", "path": snapshot["path"], "present": snapshot["present"], "why": snapshot["why"],
                "fingerprint": hashlib.sha256(snapshot["stamp"].encode()).hexdigest()[:16]}

    def finder(self) -> dict:
        """The character finder the analysis uses: {name, path, present, why, settings, fingerprint}.
        Present only when its snapshot is complete (``_snapshot``): otherwise the analysis finds
        characters classically, and says so."""
        from .detector import REQUIRED_FILES

        snapshot = self._snapshot("grounding_dino", "grounding_dino_tiny", REQUIRED_FILES)
        return {"name": "grounding_dino", "path": snapshot["path"], "present": snapshot["present"],
                "why": snapshot["why"], "settings": self.strategy["character_finder"],
                "fingerprint": hashlib.sha256(snapshot["stamp"].encode()).hexdigest()[:16]}

    def identity_embedder(self) -> dict:
        """The identity embedding the curation uses: {name, path, present, why, settings, fingerprint};
        present only when identity clustering is on and its snapshot is complete (``_snapshot``)."""
        from .embedding import EMBEDDER, REQUIRED_FILES

        snapshot = self._snapshot("dinov2", "dinov2_small", REQUIRED_FILES)
        present = self.run["curation"]["identity"]["enabled"] and snapshot["present"]
        return {"name": EMBEDDER, "path": snapshot["path"], "present": present, "why": snapshot["why"],
                "settings": self.strategy["identity_embedding"],
                "fingerprint": hashlib.sha256(snapshot["stamp"].encode()).hexdigest()[:16]}

    def _wants_vlm(self, name: str) -> bool:
        cfg = self.strategy_cfg(name)
        makes_captions = cfg.get("generate_caption", cfg.get("generate_captions", True))
        return cfg["enabled"] and makes_captions and cfg["caption_model"] == "qwen2_vl"

    @property
    def vlm_caption_strategies(self) -> list[str]:
        """Strategies whose captions the VLM writes: it is asked for and its weights are present."""
        if not self.captioner()["present"]:
            return []
        return [name for name in STRATEGIES if self._wants_vlm(name)]

    def caption_status(self) -> str:
        """How captions are made, as the report names it."""
        wanted = [name for name in STRATEGIES if self._wants_vlm(name)]
        captioner = self.captioner()
        if not wanted:
            return "template"
        if not captioner["present"]:
            return f"template (fallback: qwen2_vl weights missing at {captioner['path']}: {captioner['why']})"
        others = [name for name in self.enabled_strategies if name not in wanted]
        return f"qwen2_vl ({captioner['path']})" + (f"; template for {', '.join(others)}" if others else "")

    def caption_settings(self) -> dict:
        """The caption step's params: only what it reads, so other edits rerun none of its jobs."""
        return {
            "captioning": self.strategy["captioning"],
            "trigger_word": self.run["character"]["trigger_word"],
            "caption_prefix": self.strategy_cfg("keep_full")["caption_prefix"],
            "model": self.captioner(),
            "device": self.run["device"],
        }

    def model_path(self, key: str) -> Path | None:
        relative = self.strategy["model_paths"].get(key)
        if not relative:
            return None
        return self.resolve(self.run["models_dir"]) / relative

    def face_weights(self) -> dict[str, str]:
        """The face detector files from ``model_paths`` that exist: YuNet, else the anime cascade."""
        for key, argument in (("yunet", "yunet_path"), ("anime_face_cascade", "cascade_path")):
            path = self.model_path(key)
            if path is not None and path.is_file():
                return {argument: str(path)}
        return {}

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.workdir / candidate


def _check_separate(input_dir: Path, output_dir: Path, source: str) -> None:
    """Outputs inside the input folder would be found as frames on the next run; an input inside
    the output folder could be pruned as a stale output. Both paths are resolved (symlinks followed)."""
    if output_dir == input_dir or output_dir.is_relative_to(input_dir):
        raise ConfigError(f"{source}: output_dir: {output_dir} is inside input_dir {input_dir}; "
                          "its images would become input frames on the next run")
    if input_dir.is_relative_to(output_dir):
        raise ConfigError(f"{source}: output_dir: {output_dir} contains input_dir {input_dir}")


def _check_targets(decision: dict, source: str) -> None:
    total = sum(decision["strategy_targets"].values())
    if abs(total - 1.0) > TARGET_SUM_TOLERANCE:
        raise ConfigError(
            f"{source}: strategy_targets: must sum to 1 within {TARGET_SUM_TOLERANCE} (sum = {total:.3f})"
        )


def _refuse_forbidden_augmentations(config: dict, source: str) -> None:
    """Flips, hue / colour jitter and warps damage 3D characters: refuse each by name, saying why.

    Checked before the schema, whose enum error would not say why."""
    from .augment import forbidden_reason

    augmentation = (config.get("curation") or {}).get("augmentation")
    if not isinstance(augmentation, dict):
        return
    listed = augmentation.get("augmentations")
    names = [("augmentations", name) for name in listed] if isinstance(listed, list) else []
    names += [(key, key) for key in augmentation]  # e.g. `horizontal_flip: true`
    for key, name in names:
        reason = forbidden_reason(str(name))
        if reason:
            raise ConfigError(f"{source}: curation.augmentation.{key}: {name} is refused: {reason}")


RANGES = (("quality_filters", "brightness_range"), ("quality_filters", "saturation_range"),
          ("augmentation", "brightness_range"), ("augmentation", "contrast_range"), ("target_size",))


def _check_ranges(curation: dict, source: str) -> None:
    for path in RANGES:
        value = curation
        for key in path:
            value = value[key]
        if value[0] > value[1]:
            raise ConfigError(f"{source}: curation.{'.'.join(path)}: must be [low, high] (got {value})")


def load_run_config(config: dict, workdir: Path, source: str = "config/config.yaml",
                    workflow_dir: Path | None = None) -> RunConfig:
    """Validate Snakemake's merged ``config`` and the files it names.

    ``config`` is modified in place (defaults filled) so Snakemake sees them too.
    Relative paths are relative to the working directory; the threshold and
    strategy files fall back to the workflow's own ``config/`` copies.
    """
    _refuse_forbidden_augmentations(config, source)
    run = validate(config, "config", source)
    _check_ranges(run["curation"], source)
    workdir = Path(workdir)

    def resolve(path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else workdir / candidate

    def resolve_config_file(path: str) -> Path:
        local = resolve(path)
        if local.exists() or workflow_dir is None:
            return local
        return Path(workflow_dir) / path

    if run["input_dir"] != "demo" and not resolve(run["input_dir"]).is_dir():
        raise ConfigError(f"{source}: input_dir: directory does not exist: {run['input_dir']}")
    if run["input_dir"] != "demo":
        _check_separate(resolve(run["input_dir"]).resolve(), resolve(run["output_dir"]).resolve(), source)
    curated_dir = run["temporal_expansion"]["curated_dir"]
    if curated_dir and run["input_dir"] == "demo":
        raise ConfigError(f"{source}: temporal_expansion.curated_dir: needs input_dir to be the full frames folder, "
                          "not demo")
    if curated_dir and not resolve(curated_dir).is_dir():
        raise ConfigError(f"{source}: temporal_expansion.curated_dir: directory does not exist: {curated_dir}")
    for index, reference in enumerate(run["character"]["reference_images"]):
        if not resolve(reference).exists():
            raise ConfigError(f"{source}: character.reference_images.{index}: not found: {reference}")

    decision_source = run["decision_thresholds"]
    decision = validate(
        read_yaml(resolve_config_file(decision_source), decision_source), "decision_thresholds", decision_source
    )
    _check_targets(decision, decision_source)

    needs_file = run["dataset_needs_file"]
    if needs_file:
        path = resolve(needs_file)
        if not path.is_file():
            raise ConfigError(f"{source}: dataset_needs_file: file not found: {needs_file}")
        try:
            needs = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{needs_file}: not valid JSON at line {err.lineno}") from None
        decision["dataset_needs"].update(validate(needs, "dataset_needs", needs_file))

    strategy_source = run["strategy_configs"]
    strategy = validate(
        read_yaml(resolve_config_file(strategy_source), strategy_source), "strategy_configs", strategy_source
    )
    if not any(strategy["strategies"][name]["enabled"] for name in STRATEGIES):
        raise ConfigError(f"{strategy_source}: strategies: at least one strategy must be enabled")
    steps = strategy["strategies"]["enhance_segment"]["enhancement_steps"]
    if "face_enhance" in steps and "upscale" in steps[steps.index("face_enhance"):]:
        raise ConfigError(f"{strategy_source}: strategies.enhance_segment.enhancement_steps: upscale must come "
                          "before face_enhance (each runs as its own model step, in that order)")
    from .overrides import load_overrides

    config = RunConfig(run=run, decision=decision, strategy=strategy, workdir=workdir)
    config = replace(config, overrides=load_overrides(config.resolve(config.overrides_file), config.overrides_file))
    if run["device"] == "cuda":
        # Asked for by name: a GPU that cannot be used stops the run here, in one line,
        # instead of in the first model job (torch is imported only in this case).
        from .devices import CUDA_ADVICE, cuda_problem

        problem = cuda_problem()
        if problem is not None:
            raise ConfigError(f"{source}: device: cuda, but {problem}; {CUDA_ADVICE}")
    if run["strict_models"]:
        from .backends import missing_models

        missing = missing_models(config.model_requirements())
        if any(config._wants_vlm(name) for name in STRATEGIES) and not config.captioner()["present"]:
            captioner = config.captioner()
            missing.append(f"qwen2_vl weights missing: {captioner['path']} ({captioner['why']}; a Qwen2-VL or "
                           "Qwen2.5-VL folder: config.json, weights, tokenizer and preprocessor files)")
        if missing:
            raise ConfigError(f"{source}: strict_models: {missing[0]}")
    return config


def load_project_config(workdir: Path, workflow_dir: Path, overrides: dict | None = None,
                        configfile: str = "config/config.yaml") -> RunConfig:
    """The run config the workflow sees in ``workdir``: ``configfile`` there, else the workflow's own
    (as the Snakefile chooses), with ``overrides`` merged in as Snakemake merges ``--config``."""
    from snakemake.utils import update_config

    local = Path(workdir, configfile)
    path = local if local.is_file() else Path(workflow_dir, configfile)
    config = read_yaml(path, configfile) or {}
    update_config(config, overrides or {})
    return load_run_config(config, Path(workdir), source=str(path), workflow_dir=workflow_dir)
