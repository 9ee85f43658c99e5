"""Batched model steps: one job runs one model over a batch of frames, loaded once.

Each step (registry.MODEL_STEPS) is its own rule and conda env, and leaves per frame
a content-addressed cache entry ``<cache>/<step>/<key>/`` (built in a temp dir and
renamed, so never half there):

    upscale        the enhancement steps before face_enhance (Real-ESRGAN)   image.png
    restore_faces  face_enhance and the steps after it, then the identity
                   guard against the frame (CodeFormer / GFPGAN)            image.png
    masks          the target character's soft alpha (SAM2, then the
                   reference matcher), on the frame or the enhanced image   alpha.npy
    inpaint        the background without the target (LaMa)                 background.png

plus ``record.json`` (what ran, on which device, why). The key hashes the step,
its input (the frame's bytes, or the key of the entry it continues), the
analysis, the step's settings and its model file: changing one model's settings
recomputes that step and the steps after it, nothing before. A frame whose key
is cached is not recomputed. The job writes a manifest ``{frame: key}`` (and
the frames that failed, with why); the per-frame export job of the strategy
(frameloom.strategies.export_*) assembles the outputs from the entries.

    python -m frameloom.model_step masks --params results/params/masks/<batch>.json \\
        --cache-dir results/.cache --manifest results/steps/masks/<batch>.json --log L

``--params``: a JSON file {"members": {frame: {"frame": path, "analysis": path,
"source": the manifest of the step it continues, or null}}, "settings":
RunConfig.step_settings(step)}, written by the workflow's job_parameters rule.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from .imageio import building_folder, read_image, read_json, write_image, write_json
from .joblog import batch_step_parser, job_log
from .registry import MODEL_STEPS
from .stepcache import ALPHA, BACKGROUND, IMAGE, RECORD, Entry, content_key, entry_dir, entry_name

KEY_VERSION = "4"  # bump when a step's output changes for the same inputs


def model_stamps(settings: dict) -> list[str]:
    """Path, size and mtime of each model file the step loads: new weights change its keys.
    Taken once per job."""
    return [f"{model['path']}:{stat.st_size}:{stat.st_mtime_ns}"
            for model in settings["models"].values() if model["present"] and (stat := os.stat(model["path"]))]


def cache_key(step: str, member: dict, source_key: str | None, analysis: bytes, settings: dict,
              stamps: list[str]) -> str:
    # A continued entry's key already hashes the frame (and everything before it).
    return content_key(f"{KEY_VERSION}:{step}", source_key or Path(member["frame"]).read_bytes(), analysis,
                       settings, *stamps)


class BatchFrameFailures(RuntimeError):
    """Frames of a batch failed on an attempt that is not the last: the job fails so Snakemake retries it
    (the frames that succeeded are cached and not recomputed)."""


def step_backends(settings: dict):
    """The job's Backends for one step: only that step's model can load."""
    from .backends import Backends

    return Backends(settings["cfg"], settings["models"], settings["device"], settings.get("references"),
                    settings["cfg"], settings.get("batch_size", 1))


def _upscale(member: dict, analysis: dict, source: Entry | None, settings: dict, backends, out: Path) -> dict:
    from .enhance import EnhanceState, run_steps, split_at_face_restoration

    cfg = settings["cfg"]
    frame = read_image(member["frame"])
    state = EnhanceState(frame.shape[1])
    image, steps = run_steps(frame, analysis, cfg, split_at_face_restoration(cfg["enhancement_steps"])[0],
                             backends, state)
    write_image(out / IMAGE, image)
    return {"steps": [vars(step) for step in steps], "source_grid": state.source_grid}


def _restore_faces(member: dict, analysis: dict, source: Entry, settings: dict, backends, out: Path) -> dict:
    from .enhance import EnhanceState, EnhanceStep, identity_guard, run_steps, split_at_face_restoration

    cfg = settings["cfg"]
    frame = read_image(member["frame"])
    before = source.record
    image, steps = run_steps(read_image(source.path / IMAGE), analysis, cfg,
                             split_at_face_restoration(cfg["enhancement_steps"])[1], backends,
                             EnhanceState(frame.shape[1], before["source_grid"]))
    earlier = [EnhanceStep(**step) for step in before["steps"]]
    image, steps = identity_guard(frame, image, analysis, float(cfg["identity_max_drift"]), earlier + steps)
    write_image(out / IMAGE, image)
    return {"steps": [vars(step) for step in steps], "enhanced_size": [image.shape[1], image.shape[0]]}


def _masks(member: dict, analysis: dict, source: Entry | None, settings: dict, backends, out: Path) -> dict:
    from .strategies import scaled_hint, segment_target

    # An enhanced source is cut on its own grid: the analysis' boxes scaled to it (the frame's
    # width is the analysis', so the frame is not decoded for it).
    image = read_image(member["frame"] if source is None else source.path / IMAGE)
    hint = analysis if source is None else scaled_hint(analysis, image.shape[1] / analysis["width"])
    seg, backend, error = segment_target(image, hint, backends)
    found = error is None
    alpha = seg.target_alpha if found else np.zeros(image.shape[:2], np.float32)
    np.save(out / ALPHA, alpha.astype(np.float32))
    return {"backend": backend, "error": error, "instances_found": len(seg.instance_masks),
            "target_index": seg.target_index, "target_score": round(float(seg.target_score), 4),
            "notes": seg.notes}


def _inpaint(member: dict, analysis: dict, source: Entry, settings: dict, backends, out: Path) -> dict:
    frame = read_image(member["frame"])
    inpainter, backend = backends.inpainter()
    if source.record["error"] is None:
        alpha = np.load(source.path / ALPHA)
        background = inpainter.inpaint(frame, alpha > 0.05, dilation=settings["cfg"]["mask_dilation"])
    else:
        background = frame  # no target: nothing to remove (the export trains on neither)
    write_image(out / BACKGROUND, background)
    return {"backend": backend}


COMPUTE = {"upscale": _upscale, "restore_faces": _restore_faces, "masks": _masks, "inpaint": _inpaint}


def _compute(step: str, member: dict, analysis: dict, source: Path | None, settings: dict, backends,
             entry: Path) -> None:
    """One frame's entry, built in a sibling temp dir and renamed (no half entry); the entry it
    continues (``source``) is read once, here."""
    continued = Entry(source, read_json(source / RECORD)) if source else None
    with building_folder(entry) as staging:
        record = COMPUTE[step](member, analysis, continued, settings, backends, staging)
        # Where this frame's model ran, and the entries it continues (kept while this one is).
        chain = [*continued.record["chain"], entry_name(source.parent.name, source.name)] if continued else []
        record |= {"step": step, "devices": dict(backends.devices), "chain": chain}
        write_json(staging / RECORD, record)


def _source(member: dict, manifests: dict[str, dict], cache_dir: str, frame: str) -> tuple[Path | None, str | None]:
    """The entry this step continues for ``frame`` and its key, or (None, None) when it starts from the
    frame. Raises with the upstream error when that step failed for the frame. ``manifests``: the
    job's source manifests, each read once."""
    if not member["source"]:
        return None, None
    if member["source"] not in manifests:
        manifests[member["source"]] = read_json(member["source"])
    manifest = manifests[member["source"]]
    if frame in manifest["failed"]:
        raise RuntimeError(f"{manifest['step']} failed: {manifest['failed'][frame]}")
    key = manifest["frames"][frame]
    return entry_dir(cache_dir, manifest["step"], key), key


def run_batch(step: str, members: dict[str, dict], settings: dict, cache_dir: str, manifest_path: str,
              log_path: str, attempt: int = 1, attempts: int = 1) -> dict:
    """Compute every member frame missing from the cache; write the manifest.

    A frame that raises (a model error, out of memory, a failed earlier step)
    does not stop its batch-mates. Before the last of ``attempts`` the job then
    fails, so Snakemake retries it; on the last, the manifest records the
    frame's error and its export reports it.
    """
    with job_log(log_path, f"{step} batch", live=True) as lines:
        backends = step_backends(settings)
        manifest, failed, computed, cached = {}, {}, 0, 0
        sources: dict[str, dict] = {}
        stamps = model_stamps(settings)
        for frame, member in sorted(members.items()):
            try:
                source, source_key = _source(member, sources, cache_dir, frame)
                analysis = Path(member["analysis"]).read_bytes()  # read once: the key, then the step
                key = cache_key(step, member, source_key, analysis, settings, stamps)
                entry = entry_dir(cache_dir, step, key)
                if (entry / RECORD).is_file():
                    cached += 1
                else:
                    _compute(step, member, json.loads(analysis), source, settings, backends, entry)
                    computed += 1
            except Exception as error:  # noqa: BLE001 (any failure of one frame stays that frame's)
                failed[frame] = f"{type(error).__name__}: " + (str(error).strip().splitlines() or ["no message"])[0]
                lines.append(f"{frame} failed on attempt {attempt} of {attempts}:\n{traceback.format_exc()}")
                continue
            manifest[frame] = key
        lines.append(f"frames: {len(members)} (computed {computed}, from cache {cached}, failed {len(failed)}); "
                     f"attempt {attempt} of {attempts}")
        loads = ", ".join(f"{name} x{count}" for name, count in sorted(backends.loads.items())) or "none"
        lines.append(f"model loads: {loads}")
        for name, where in sorted(backends.devices.items()):
            lines.append(f"{name} ran on {where['device']} ({where['precision']})"
                         + (f": the GPU is not usable, {where['cpu_because']}" if where["cpu_because"] else ""))
        if failed and attempt < attempts:
            raise BatchFrameFailures(f"{len(failed)} frame(s) failed, retrying: {', '.join(sorted(failed))}")
        write_json(manifest_path, {"step": step, "frames": manifest, "failed": failed})
    return manifest


def run_frame_steps(strategy: str, frame: str, frame_path: str, analysis_path: str, run, cache_dir: str,
                    work_dir: str) -> dict[str, str]:
    """One frame through its strategy's model steps in this process, each a one-frame batch
    (benchmarks and tests; the workflow runs the steps as batched jobs). ``run``: the RunConfig.
    Returns {step: manifest} for the export; manifests and logs go under ``work_dir``."""
    manifests = {}
    for step, source in run.frame_steps(strategy).items():
        manifests[step] = str(Path(work_dir, step, f"{frame}.json"))
        member = {"frame": frame_path, "analysis": analysis_path, "source": source and manifests[source]}
        run_batch(step, {frame: member}, run.step_settings(step), cache_dir, manifests[step],
                  str(Path(work_dir, step, f"{frame}.log")))
    return manifests


def write_placeholders(frame: str, strategy: str, frame_path: str, outputs: dict, error: str) -> None:
    """A failed frame's declared outputs: its input frame in each image slot, empty captions, and a meta
    that marks them as placeholders (never trained on) and names the error."""
    from .imageio import FrameDecodeError, write_text

    try:
        image = read_image(frame_path)
    except (FrameDecodeError, OSError):
        image = np.full((1, 1, 3), 128, np.uint8)  # the frame itself is what broke
    entries = []
    for name, target in outputs.items():
        if name == "meta":
            continue
        if target.endswith(".txt"):
            write_text(target, "")
            continue
        write_image(target, image)
        entries.append({"image": target, "caption": None, "role": name,
                        "subject": "background" if name == "background" else "character",
                        "backend": "placeholder (model step failed)", "train": False, "facts": []})
    write_json(outputs["meta"], {"frame": frame, "strategy": strategy, "error": f"ModelStepError: {error}",
                                 "outputs": entries})


def main(argv: list[str] | None = None) -> int:
    parser = batch_step_parser("python -m frameloom.model_step", __doc__)
    parser.add_argument("step", choices=sorted(MODEL_STEPS))
    parser.add_argument("--params", required=True, help="JSON file: members, settings (see above)")
    parser.add_argument("--attempt", type=int, default=1, help="Snakemake's attempt number of this job")
    parser.add_argument("--attempts", type=int, default=1, help="attempts Snakemake allows (retries + 1)")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(args.threads)
    params = read_json(args.params)
    if any(model["present"] for model in params["settings"]["models"].values()):
        import torch

        torch.set_num_threads(args.threads)
    run_batch(args.step, params["members"], params["settings"], args.cache_dir, args.manifest, args.log,
              args.attempt, args.attempts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
