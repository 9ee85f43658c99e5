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

    python -m frameloom.model_step segment --members '{"f": ["f.png", "f.json"]}' \\
        --step '{"settings": {...}, "outputs": {...}}' --cache-dir results/.cache \\
        --manifest results/segment/batches/0000.json --log L
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
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


def run_batch(strategy: str, members: dict[str, list[str]], settings: dict, strategy_outputs: dict,
              cache_dir: str, manifest_path: str, log_path: str) -> dict:
    """Compute every member frame missing from the cache; write the manifest.

    ``members``: {frame: [frame_path, analysis_path]}; ``strategy_outputs``: the
    strategy's output patterns (layout.strategy_outputs) giving names and suffixes.
    """
    from .strategies import backends_for, execute

    with job_log(log_path, f"{strategy} batch") as lines:
        backends = backends_for(settings)
        manifest, computed, cached = {}, 0, 0
        for frame, (frame_path, analysis_path) in sorted(members.items()):
            frame_settings = {**settings, "frame": frame}
            key = cache_key(strategy, frame_path, analysis_path, frame_settings)
            entry = Path(cache_dir, strategy, key)
            if not (entry / "meta.json").is_file():
                # Build in a sibling temp dir and rename: a crash leaves no half entry.
                entry.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key}."))
                final = frame_outputs(strategy_outputs, frame)
                staged = _in_entry(staging, final)
                execute(strategy, frame_path, analysis_path, staged, frame_settings, backends)
                # The meta names the frame's real output paths, so it can be linked as is.
                real = {str(staging / name): target for name, target in _pairs(final)}
                meta = read_json(staged["meta"])
                meta["outputs"] = [
                    {**e, "image": real[e["image"]], "caption": e["caption"] and real[e["caption"]]}
                    for e in meta["outputs"]
                ]
                write_json(staged["meta"], meta)
                shutil.rmtree(entry, ignore_errors=True)
                os.replace(staging, entry)
                computed += 1
            else:
                cached += 1
            manifest[frame] = key
        write_json(manifest_path, {"strategy": strategy, "frames": manifest})
        loads = ", ".join(f"{name} x{count}" for name, count in sorted(backends.loads.items())) or "none"
        lines.append(f"frames: {len(members)} (computed {computed}, from cache {cached})")
        lines.append(f"model loads: {loads}")
    return manifest


def _link(src: Path, dst: str) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}.{os.getpid()}.tmp"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def export_frame(frame: str, manifest_path: str, cache_dir: str, outputs: dict) -> str:
    """Link one frame's cached files, meta included, to its output paths (same inodes where possible).

    Returns a line for the job log."""
    manifest = read_json(manifest_path)
    entry = Path(cache_dir, manifest["strategy"], manifest["frames"][frame])
    pairs = _pairs(outputs)
    for name, target in pairs:
        _link(entry / name, target)
    return f"{frame}: {len(pairs)} files from cache entry {entry.name}"


def main(argv: list[str] | None = None) -> int:
    parser = batch_step_parser("python -m frameloom.model_step", __doc__)
    parser.add_argument("strategy", choices=("segment", "enhance_segment"))
    parser.add_argument("--members", required=True, help="JSON: {frame: [frame_path, analysis_path]}")
    parser.add_argument("--step", required=True, help='JSON: {"settings": ..., "outputs": output patterns}')
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(args.threads)
    if any(model["present"] for model in json.loads(args.step)["settings"]["models"].values()):
        import torch

        torch.set_num_threads(args.threads)
    step = json.loads(args.step)
    run_batch(args.strategy, json.loads(args.members), step["settings"], step["outputs"],
              args.cache_dir, args.manifest, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
