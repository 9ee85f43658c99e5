import sys
from pathlib import Path

import cv2

# The package lives in scripts/; run: rules import it in-process.
sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
# Snakemake already runs one job per core: nested OpenCV threads would only oversubscribe.
cv2.setNumThreads(1)

from frameloom import layout, stages
from frameloom.config import ConfigError, load_run_config
from frameloom.discovery import discover_frames
from frameloom.merge import FAILED, read_plan

try:
    RUN = load_run_config(
        config,
        Path.cwd(),
        source=(workflow.overwrite_configfiles or ["config/config.yaml"])[-1],
        workflow_dir=Path(workflow.basedir),
    )
except ConfigError as error:
    # One line naming the file, the key and the rule, before any job starts.
    sys.exit(f"frameloom: configuration error: {error}")

OUT = RUN.output_dir
DEMO_FRAMES_DIR = f"{OUT}/demo/frames"


def _frame_index():
    if RUN.is_demo:
        names = [f"demo_{i:04d}" for i in range(RUN.run["demo"]["frames"])]
        if RUN.run["limit"]:
            names = names[: RUN.run["limit"]]
        return {name: Path(DEMO_FRAMES_DIR, f"{name}.png") for name in names}
    return discover_frames(RUN.resolve(RUN.run["input_dir"]), RUN.run["limit"])


FRAMES = _frame_index()
FRAME_IDS = sorted(FRAMES)
INPUT_ROOT = Path(DEMO_FRAMES_DIR) if RUN.is_demo else RUN.resolve(RUN.run["input_dir"])


wildcard_constraints:
    frame="[A-Za-z0-9][A-Za-z0-9._-]*",


def frame_path(wildcards):
    return str(FRAMES[wildcards.frame])


def frame_source(wildcards):
    """The frame's path relative to the input folder, as the report names it."""
    return FRAMES[wildcards.frame].relative_to(INPUT_ROOT).as_posix()


def strategy_outputs(strategy):
    return layout.strategy_outputs(OUT, strategy, RUN.strategy_cfg(strategy))


def strategy_params(strategy):
    """The strategy's settings for one frame."""
    return lambda wildcards: RUN.strategy_settings(wildcards.frame, strategy)


def planned_metas(wildcards):
    """{frame: meta file} for every frame the plan gave a strategy (after the plan checkpoint)."""
    planned = read_plan(checkpoints.plan.get().output[0])
    return {
        frame: f"{OUT}/{strategy}/meta/{frame}.json"
        for frame, strategy in planned.items()
        if strategy != FAILED
    }
