import functools
import json
import shlex
import sys
import types
from pathlib import Path

import cv2
from snakemake.exceptions import IncompleteCheckpointException
from snakemake.io import checkpoint_target
from snakemake.settings.types import DeploymentMethod

# The package lives in scripts/; run: rules import it in-process, shell steps via PYTHONPATH.
SCRIPTS_DIR = str(Path(workflow.basedir) / "scripts")
sys.path.insert(0, SCRIPTS_DIR)
# Snakemake already runs one job per core: nested OpenCV threads would only oversubscribe.
cv2.setNumThreads(1)

from frameloom import layout, stages
from frameloom.analysis import ANALYSIS_VERSION
from frameloom.batching import BatchPlan
from frameloom.config import load_run_config
from frameloom.models import MODEL_REGISTRY, requirement_env
from frameloom.registry import MODEL_STEPS, STRATEGY_REGISTRY
from frameloom.schema import ConfigError
from frameloom.discovery import discover_frames, discover_videos, relative_files
from frameloom.imageio import read_json
from frameloom.video import INDEX_FILE as VIDEO_INDEX
from frameloom.plan import NOT_PROCESSED, read_plan
from frameloom.preflight import check_output_dir
from frameloom.summary import CONFIG_ERROR, end_of_run, stopped

try:
    RUN = load_run_config(
        config,
        Path.cwd(),
        source=(workflow.overwrite_configfiles or ["config/config.yaml"])[-1],
        workflow_dir=Path(workflow.basedir),
    )
except ConfigError as error:
    # One line naming the file, the key and the rule, before any job starts.
    print(f"frameloom: configuration error: {error}", file=sys.stderr)
    sys.exit(CONFIG_ERROR)

OUT = RUN.output_dir
LOGS = layout.logs_dir(OUT)
# Model inference uses 4 cores per job (Snakemake caps it at --cores locally); the
# classical fallback is single-threaded.
MODEL_THREADS = 4 if any(r["present"] for r in RUN.model_requirements().values()) else 1
DEMO_FRAMES_DIR = layout.demo_frames_dir(OUT)
CACHE_DIR = layout.cache_dir(OUT)
# A conda env brings its own python; otherwise the interpreter running Snakemake.
MODEL_PYTHON = "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable


def _frame_index():
    if RUN.is_demo:
        names = [f"demo_{i:04d}" for i in range(RUN.run["demo"]["frames"])]
        if RUN.run["limit"]:
            names = names[: RUN.run["limit"]]
        return {name: Path(DEMO_FRAMES_DIR, f"{name}.png") for name in names}
    return discover_frames(RUN.resolve(RUN.run["input_dir"]), RUN.run["limit"])


# Image frames in input_dir (known now), and videos, whose frames are known
# once their extract_video checkpoint ran.
FRAMES = _frame_index()
VIDEOS = {} if RUN.is_demo else discover_videos(RUN.resolve(RUN.run["input_dir"]))
VIDEO_FRAMES_DIR = f"{OUT}/video_frames"
EXPANSION = RUN.run["temporal_expansion"]
EXPANDING = bool(EXPANSION["curated_dir"])
FRAME_IDS = tuple(sorted(FRAMES))
INPUT_ROOT = Path(DEMO_FRAMES_DIR) if RUN.is_demo else RUN.resolve(RUN.run["input_dir"])


# Before the first job of a real run (not a dry run, --lint or --unlock): the
# output folder is writable and has room.
onstart:
    try:
        check_output_dir(
            RUN.resolve(OUT),
            sum(path.stat().st_size for path in [*FRAMES.values(), *VIDEOS.values()] if path.is_file()),
            len(FRAMES) + len(VIDEOS),
        )
    except ConfigError as error:
        print(f"frameloom: {error}", file=sys.stderr)
        sys.exit(CONFIG_ERROR)


wildcard_constraints:
    frame="[A-Za-z0-9][A-Za-z0-9._-]*",
    step="|".join(["finder", "captions", *MODEL_STEPS]),
    batch="[0-9a-f]+",
    # One path component: a video's extracted frames are files inside its folder, not other videos.
    video="[A-Za-z0-9][A-Za-z0-9._-]*",


def _video_of(frame):
    """The video a frame id was extracted from (ids are "{video id}_t{seconds}"), or None."""
    video, _, seconds = frame.rpartition("_t")
    return video if video in VIDEOS and seconds.replace(".", "").isdigit() else None


def frame_file(frame):
    """The image file of a frame id: in input_dir, or extracted from its video."""
    if frame in FRAMES:
        return str(FRAMES[frame])
    return f"{VIDEO_FRAMES_DIR}/{_video_of(frame)}/{frame}.png"


def frame_path(wildcards):
    return frame_file(wildcards.frame)


def frame_source(wildcards):
    """How the report names the frame: its path relative to the input folder, and for a
    video frame the video's with the time (a media fragment: clip.mp4#t=12.480)."""
    if wildcards.frame in FRAMES:
        return FRAMES[wildcards.frame].relative_to(INPUT_ROOT).as_posix()
    video = _video_of(wildcards.frame)
    seconds = float(wildcards.frame.rpartition("_t")[2])
    return f"{VIDEOS[video].relative_to(INPUT_ROOT).as_posix()}#t={seconds:.3f}"


@functools.lru_cache(maxsize=4)
def _listed_frame_ids(version):
    """The frame ids to process for a ``version`` of the checkpoint outputs (see frame_ids_version)."""
    if version is None:
        return FRAME_IDS
    ids = list(read_json(version[0][0])["selected"]) if EXPANDING else list(FRAMES)
    for index, _ in version[int(EXPANDING) :]:
        ids += [Path(entry["file"]).stem for entry in read_json(index)["extracted"]]
    return tuple(sorted(ids))


def frame_ids_version():
    """A small key for the current frame list: ((path, mtime), ...) of the checkpoint outputs that name
    frames (temporal expansion, each video's index), or None when input_dir alone does. Asks the
    checkpoints, so it belongs in input functions."""
    if not EXPANDING and not VIDEOS:
        return None
    outputs = [checkpoints.temporal_expansion.get().output[0]] if EXPANDING else []
    outputs += [str(Path(checkpoints.extract_video.get(video=v).output[0], VIDEO_INDEX)) for v in VIDEOS]
    return tuple((path, Path(path).stat().st_mtime_ns) for path in outputs)


def frame_ids():
    """Every frame to process: the image frames (only the curated ones and their neighbours
    when temporal_expansion is on) and every video's extracted frames."""
    return _listed_frame_ids(frame_ids_version())


# The character finder (Grounding DINO, when its weights are present): batches of about
# `character_finder.frames_per_job` frames (layout.content_batches), each one job with one model load.
FINDER = RUN.finder()
# Memory requests from the weights each model job loads: measured once, not per job.
JOB_MEMORY_MB = {
    "finder": RUN.job_memory_mb([FINDER["path"]]),
    "captions": RUN.job_memory_mb([RUN.captioner()["path"]]),
    **{step: RUN.step_memory_mb(step) for step in MODEL_STEPS},
}


@functools.lru_cache(maxsize=8)
def _finder_batches(frames):
    batches = layout.content_batches(frames, FINDER["settings"]["frames_per_job"])
    return batches, {frame: batch for batch, members in batches.items() for frame in members}


def finder_batch_frames(wildcards):
    return [frame_file(frame) for frame in _finder_batches(frame_ids())[0][wildcards.batch]]


def finder_parameters(batch):
    """The finder job's parameters file content: {frame: frame file}."""
    return {frame: frame_file(frame) for frame in _finder_batches(frame_ids())[0][batch]}


def finder_detections(wildcards):
    """The analysis's finder input: its frame's batch folder, or nothing without the finder."""
    if not FINDER["present"]:
        return {}
    batch = _finder_batches(frame_ids())[1][wildcards.frame]
    return {"detections": layout.finder_batch(OUT).format(batch=batch)}


def finder_batch_folders(wildcards):
    """The finder's batch folders of the current frames (the merge keeps their cache entries)."""
    if not FINDER["present"]:
        return []
    return [layout.finder_batch(OUT).format(batch=batch) for batch in _finder_batches(frame_ids())[0]]


def all_analyses(wildcards):
    return [layout.analysis(OUT).format(frame=frame) for frame in frame_ids()]


def strategy_outputs(strategy):
    return layout.strategy_outputs(OUT, strategy, RUN.strategy_cfg(strategy))


def strategy_params(strategy):
    """The strategy's settings for one frame."""
    return lambda wildcards: RUN.strategy_settings(wildcards.frame, strategy)


@functools.lru_cache(maxsize=4)
def _plan(plan_path, plan_mtime):
    """The plan, read once per version: input functions ask for it once per job."""
    return types.MappingProxyType(read_plan(plan_path))


@functools.lru_cache(maxsize=4)
def _metas(plan_path, plan_mtime):
    return types.MappingProxyType(
        {
            frame: layout.strategy_meta(OUT, strategy).format(frame=frame)
            for frame, strategy in _plan(plan_path, plan_mtime).items()
            if strategy not in NOT_PROCESSED
        }
    )


@functools.lru_cache(maxsize=4)
def _plan_covers(plan_path, plan_mtime, ids_version):
    """Whether the plan names exactly the frames to process (asked once per job, answered once per version)."""
    return set(_plan(plan_path, plan_mtime)) == set(_listed_frame_ids(ids_version))


def _plan_version():
    """The plan file and its mtime (after the decide checkpoint): the key its parsed forms are cached under.

    A plan from an earlier run that does not cover the current frames (a frame, video or curated
    frame was added or removed) is about to be rewritten: no job is built from it until then."""
    ids_version = frame_ids_version()
    plan_path = checkpoints.decide.get().output.plan
    version = plan_path, Path(plan_path).stat().st_mtime_ns
    if not _plan_covers(*version, ids_version):
        raise IncompleteCheckpointException(checkpoints.decide.rule, checkpoint_target(plan_path))
    return version


def planned_metas(wildcards):
    """{frame: meta file} (read-only) for every frame the plan gave a strategy."""
    return _metas(*_plan_version())


# Frames per model step job (processing.frames_per_job), resolved once per DAG.
MODEL_FRAMES_PER_JOB = RUN.model_frames_per_job
# {strategy: {step: the step it continues}}: the model steps a frame of each model strategy goes through.
FRAME_STEPS = {name: RUN.frame_steps(name) for name, strategy in STRATEGY_REGISTRY.items() if strategy.uses_models}


# Each model step's settings (its keys, model, device, references), worked out once per DAG,
# not once per batch job.
STEP_SETTINGS = {step: RUN.step_settings(step) for step in MODEL_STEPS}


@functools.lru_cache(maxsize=4)
def _batch_plan(plan_path, plan_mtime):
    """The batches of one version of the plan (frameloom.batching), built once: input functions
    ask for them once per job."""
    return BatchPlan(_plan(plan_path, plan_mtime), FRAME_STEPS, MODEL_FRAMES_PER_JOB, OUT)


def batch_plan():
    return _batch_plan(*_plan_version())


def frame_step_manifests(strategy):
    """The export rule's inputs: {step: manifest of the frame's batch} for every step the frame goes through."""
    return lambda wildcards: {step: batch_plan().step_manifest(step, wildcards.frame) for step in FRAME_STEPS[strategy]}


def step_inputs(step):
    """A model step job's inputs: its frames, their analyses and the manifests its entries continue."""

    def inputs(wildcards):
        members = batch_plan().step_members(step, wildcards.batch, frame_file)
        return {
            "frames": [member["frame"] for member in members.values()],
            "analyses": [member["analysis"] for member in members.values()],
            "sources": sorted({member["source"] for member in members.values()} - {None}),
        }

    return inputs


def step_parameters(step, batch):
    """A model step job's parameters file content: its members and the step's settings."""
    return {"members": batch_plan().step_members(step, batch, frame_file), "settings": STEP_SETTINGS[step]}


def by_attempt(base):
    """A resource that grows with the retry attempt."""
    return lambda wildcards, attempt: base * attempt


def attempts(wildcards):
    """How many tries a job gets: --retries + 1; known once jobs are built. A job on a cluster node
    runs with --retries 0, so the slurm profile sets it (set-resources for each model step: attempts)."""
    return workflow.execution_settings.retries + 1


# What the per-frame strategy jobs need to curate their images.
CURATION = {"cfg": RUN.run["curation"], "good_lighting": RUN.decision["thresholds"]["good_lighting"]}


# The VLM caption step: frames of the strategies it captions, `captioning.frames_per_job` per job.
CAPTION_STRATEGIES = RUN.vlm_caption_strategies


def caption_batches():
    return batch_plan().batches(CAPTION_STRATEGIES, RUN.strategy["captioning"]["frames_per_job"])[0]


def caption_batch_metas(wildcards):
    metas = planned_metas(wildcards)
    return [metas[frame] for frame in caption_batches()[wildcards.batch]]


def caption_parameters(batch):
    """A caption job's parameters file content: {frame: meta file} and the caption settings."""
    metas = planned_metas(None)
    members = {frame: metas[frame] for frame in caption_batches()[batch]}
    return {"members": members, "settings": RUN.caption_settings()}


def job_parameters_inputs(wildcards):
    """The files a parameters file names: the finder's frames, the caption batch's metas, a model
    step batch's frames and analyses. (Found through the plan, which a cluster node can then read.)"""
    if wildcards.step == "finder":
        return finder_batch_frames(wildcards)
    if wildcards.step == "captions":
        return caption_batch_metas(wildcards)
    inputs = step_inputs(wildcards.step)(wildcards)
    return inputs["frames"] + inputs["analyses"]


def job_parameters(wildcards):
    """What a batched model job reads from its parameters file (rule job_parameters)."""
    if wildcards.step == "finder":
        return finder_parameters(wildcards.batch)
    if wildcards.step == "captions":
        return caption_parameters(wildcards.batch)
    return step_parameters(wildcards.step, wildcards.batch)


def caption_manifests(wildcards):
    return [f"{OUT}/captions/batches/{batch}.json" for batch in caption_batches()]


def curated_frames(wildcards):
    return layout.curated_dirs(OUT, _plan(*_plan_version()))


# The identity embedding (DINOv2, when its weights are present): one job embeds every
# cut-out for the curation's identity clusters (frameloom.embed_step).
EMBEDDER = RUN.identity_embedder()
JOB_MEMORY_MB["embedding"] = RUN.job_memory_mb([EMBEDDER["path"]])


def identity_embeddings(wildcards):
    """select_dataset's embedding input: the embed step's file, or nothing without the weights."""
    return {"embeddings": rules.embed_cut_outs.output[0]} if EMBEDDER["present"] else {}
