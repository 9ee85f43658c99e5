"""Batched model steps: one job serves a batch of frames with models loaded once.

Snakemake outputs are fixed patterns, so a batch job cannot declare its
frames' files. Instead it fills a content-addressed cache,
``<cache>/<key>/``, where the key hashes the frame's bytes, its analysis and
the step's settings (model files and the frame id included), and writes a
manifest ``{frame: key}``. A cheap per-frame export job then hard-links the
cached files, meta included, into the seed's output tree. A frame whose key is
already cached is not recomputed, and its exported files are the same inodes,
so changing one frame of a batch leaves its batch-mates' outputs byte- and
mtime-identical.

    python -m frameloom.model_step segment --params results/params/segment/<batch>.json \\
        --cache-dir results/.cache --manifest results/segment/batches/<batch>.json --log L

``--params``: a JSON file {"members": {frame: [frame_path, analysis_path]},
"settings": ..., "outputs": the strategy's output patterns}, written by the
workflow's job_parameters rule (so the job's logged command stays one line).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from .imageio import read_json, write_json
from .layout import frame_outputs
from .stages import batch_step_parser, job_log

KEY_VERSION = "3"  # bump when executor output changes for the same inputs


def cache_key(strategy: str, frame_path: str, analysis_path: str, settings: dict) -> str:
    digest = hashlib.sha256(f"{KEY_VERSION}:{strategy}".encode())
    for path in (frame_path, analysis_path):
        digest.update(Path(path).read_bytes())
    # The frame id is part of it: the cached meta records the frame's final paths.
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for model in settings.get("models", {}).values():
        if model["present"]:
            stat = os.stat(model["path"])
            digest.update(f"{model['path']}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _pairs(outputs: dict) -> list[tuple[str, str]]:
    """(name in the cache entry, output path) for every named output, lists unrolled."""
    pairs = []
    for name, target in outputs.items():
        if isinstance(target, list):
            pairs += [(f"{name}{i}{Path(t).suffix}", t) for i, t in enumerate(target)]
        else:
            pairs.append((f"{name}{Path(target).suffix}", target))
    return pairs


def _in_entry(entry: Path, outputs: dict) -> dict:
    """The same named outputs, placed inside a cache entry."""
    placed = {}
    for name, target in outputs.items():
        if isinstance(target, list):
            placed[name] = [str(entry / f"{name}{i}{Path(t).suffix}") for i, t in enumerate(target)]
        else:
            placed[name] = str(entry / f"{name}{Path(target).suffix}")
    return placed


class BatchFrameFailures(RuntimeError):
    """Frames of a batch failed on an attempt that is not the last: the job fails so Snakemake retries it
    (the frames that succeeded are cached and not recomputed)."""


def _compute(strategy: str, frame: str, frame_path: str, analysis_path: str, frame_settings: dict,
             strategy_outputs: dict, backends, entry: Path) -> None:
    """One frame's outputs into its cache entry, built in a sibling temp dir and renamed (no half entry)."""
    from .strategies import execute

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
    try:
        final = frame_outputs(strategy_outputs, frame)
        staged = _in_entry(staging, final)
        execute(strategy, frame_path, analysis_path, staged, frame_settings, backends)
        # The meta names the frame's real output paths, so it can be linked as is.
        real = {str(staging / name): target for name, target in _pairs(final)}
        meta = read_json(staged["meta"])
        meta["devices"] = dict(backends.devices)  # where this frame's models ran
        meta["outputs"] = [
            {**e, "image": real[e["image"]], "caption": e["caption"] and real[e["caption"]]}
            for e in meta["outputs"]
        ]
        write_json(staged["meta"], meta)
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def run_batch(strategy: str, members: dict[str, list[str]], settings: dict, strategy_outputs: dict,
              cache_dir: str, manifest_path: str, log_path: str, attempt: int = 1, attempts: int = 1) -> dict:
    """Compute every member frame missing from the cache; write the manifest.

    ``members``: {frame: [frame_path, analysis_path]}; ``strategy_outputs``: the
    strategy's output patterns (layout.strategy_outputs) giving names and suffixes.
    A frame that raises (a model error, out of memory) does not stop its
    batch-mates. Before the last of ``attempts`` the job then fails, so
    Snakemake retries it; on the last, the manifest records the frame's error
    and its export reports it.
    """
    from .strategies import backends_for

    with job_log(log_path, f"{strategy} batch") as lines:
        backends = backends_for(settings)
        manifest, failed, computed, cached = {}, {}, 0, 0
        for frame, (frame_path, analysis_path) in sorted(members.items()):
            frame_settings = {**settings, "frame": frame}
            key = cache_key(strategy, frame_path, analysis_path, frame_settings)
            entry = Path(cache_dir, strategy, key)
            if (entry / "meta.json").is_file():
                cached += 1
            else:
                try:
                    _compute(strategy, frame, frame_path, analysis_path, frame_settings, strategy_outputs,
                             backends, entry)
                except Exception as error:  # noqa: BLE001 (any failure of one frame stays that frame's)
                    failed[frame] = f"{type(error).__name__}: " + (str(error).strip().splitlines() or ["no message"])[0]
                    lines.append(f"{frame} failed on attempt {attempt} of {attempts}:\n{traceback.format_exc()}")
                    continue
                computed += 1
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
        write_json(manifest_path, {"strategy": strategy, "frames": manifest, "failed": failed})
    return manifest


def _link(src: Path, dst: str) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}.{os.getpid()}.tmp"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_placeholders(frame: str, strategy: str, frame_path: str, outputs: dict, error: str) -> None:
    """A failed frame's declared outputs: its input frame in each image slot, empty captions, and a meta
    that marks them as placeholders (never trained on) and names the error."""
    import numpy as np

    from .imageio import FrameDecodeError, read_image, write_image, write_text

    try:
        image = read_image(frame_path)
    except (FrameDecodeError, OSError):
        image = np.full((1, 1, 3), 128, np.uint8)  # the frame itself is what broke
    entries = []
    for name, target in _pairs({k: v for k, v in outputs.items() if k != "meta"}):
        if target.endswith(".txt"):
            write_text(target, "")
            continue
        write_image(target, image)
        role = Path(name).stem
        entries.append({"image": target, "caption": None, "role": role,
                        "subject": "background" if role == "background" else "character",
                        "backend": "placeholder (model step failed)", "train": False, "facts": []})
    write_json(outputs["meta"], {"frame": frame, "strategy": strategy, "error": f"ModelStepError: {error}",
                                 "outputs": entries})


def export_frame(frame: str, manifest_path: str, cache_dir: str, outputs: dict, frame_path: str) -> str:
    """Link one frame's cached files, meta included, to its output paths (same inodes where possible);
    a frame that failed in its batch gets placeholders and its error instead.

    Returns a line for the job log."""
    manifest = read_json(manifest_path)
    if frame in manifest.get("failed", {}):
        _write_placeholders(frame, manifest["strategy"], frame_path, outputs, manifest["failed"][frame])
        return f"{frame}: failed in its batch: {manifest['failed'][frame]}"
    entry = Path(cache_dir, manifest["strategy"], manifest["frames"][frame])
    pairs = _pairs(outputs)
    for name, target in pairs:
        _link(entry / name, target)
    return f"{frame}: {len(pairs)} files from cache entry {entry.name}"


def main(argv: list[str] | None = None) -> int:
    parser = batch_step_parser("python -m frameloom.model_step", __doc__)
    parser.add_argument("strategy", choices=("segment", "enhance_segment"))
    parser.add_argument("--params", required=True, help="JSON file: members, settings, outputs (see above)")
    parser.add_argument("--attempt", type=int, default=1, help="Snakemake's attempt number of this job")
    parser.add_argument("--attempts", type=int, default=1, help="attempts Snakemake allows (retries + 1)")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(args.threads)
    params = read_json(args.params)
    if any(model["present"] for model in params["settings"]["models"].values()):
        import torch

        torch.set_num_threads(args.threads)
    run_batch(args.strategy, params["members"], params["settings"], params["outputs"],
              args.cache_dir, args.manifest, args.log, args.attempt, args.attempts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
