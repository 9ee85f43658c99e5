"""The batched character-finder step: one job finds the characters of a batch of frames.

Grounding DINO (frameloom.detector) is loaded once for the whole batch and
the frames run ``--batch-size`` at a time; each frame's result is written as
soon as its batch is done, to ``<out-dir>/<frame>.json`` (atomically), so a
job stopped half-way keeps what it finished. A frame that cannot be decoded
gets ``{"ok": false, "error": ...}`` and the others go on; a model failure
fails the job (its traceback is in the log), so Snakemake can retry it.

    python -m frameloom.detect_step --frames frames.json --out-dir results/detections \\
        --model-dir models/detection/grounding-dino-tiny --prompts person animal creature "cartoon character" \\
        --log L

``--frames``: a JSON file ``{frame_id: frame_path}`` (the workflow's job_parameters rule writes it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .detector import DEFAULT_PROMPTS, FINDER, CharacterDetector, model_label, text_prompt
from .devices import cpu_because
from .imageio import FrameDecodeError, read_image, read_json, write_json
from .joblog import job_log
from .stepcache import FINDER as FINDER_CACHE
from .stepcache import cached_record, content_key, entry_name, store_record

CACHE_VERSION = "1"  # bump when a detection record changes for the same inputs


def frame_record(frame: str, detector, prompts: list[str], detections: list[dict]) -> dict:
    """One frame's detection file."""
    return {"frame": frame, "ok": True, "finder": FINDER, "model": detector.model_name, "device": detector.device,
            "dtype": detector.dtype, "prompts": list(prompts), "detections": detections}


def failed_record(frame: str, model_dir: str, error: Exception) -> dict:
    message = (str(error).strip().splitlines() or ["no message"])[0]
    return {"frame": frame, "ok": False, "finder": FINDER, "model": model_label(model_dir),
            "error": f"{type(error).__name__}: {message}"}


def settings_stamp(model_fingerprint: str, prompts: list[str], box_threshold: float, text_threshold: float) -> bytes:
    """What besides a frame's bytes its detections depend on: the model's files (their fingerprint,
    RunConfig.finder's, which the rule also reruns on) and the settings."""
    return f"{CACHE_VERSION}:{text_prompt(prompts)}:{box_threshold}:{text_threshold}:{model_fingerprint}".encode()


def cache_key(frame_path: str, stamp: bytes) -> str:
    return content_key(stamp, Path(frame_path).read_bytes())


def run_detections(frames: dict[str, str], out_dir: str, model_dir: str, prompts: list[str], log_path: str,
                   device: str = "auto", box_threshold: float = 0.3, text_threshold: float = 0.25,
                   batch_size: int = 4, detector=None, cache_dir: str | None = None,
                   model_fingerprint: str = "") -> dict[str, dict]:
    """Detect the characters of every frame ``{frame_id: path}``; one JSON per frame in ``out_dir``.

    With ``cache_dir``, a frame whose bytes, model (``model_fingerprint``) and settings were detected before
    (the entry ``<cache_dir>/finder/<key>/``, frameloom.stepcache) is not detected again,
    so a re-formed batch recomputes only its new frames. ``detector`` (tests) replaces the one built from ``model_dir``;
    either way the model is loaded at most once, and only when a frame needs it.
    Returns the records written, by frame."""
    if cache_dir and not model_fingerprint:
        # Without it, new weights would be answered from the old weights' cache.
        raise ValueError("caching detections needs the model files' fingerprint (model_fingerprint)")
    with job_log(log_path, "detect batch", live=True) as lines:
        loads = 0
        lines.append(f"prompt: {text_prompt(prompts)!r}")
        records: dict[str, dict] = {}
        keys: dict[str, str] = {}
        pending = []
        stamp = settings_stamp(model_fingerprint, prompts, box_threshold, text_threshold) if cache_dir else b""
        for frame, path in sorted(frames.items()):
            try:
                keys[frame] = cache_key(path, stamp) if cache_dir else ""
            except OSError as error:
                records[frame] = failed_record(frame, model_dir, error)
                lines.append(f"{frame}: {records[frame]['error']}")
                write_json(Path(out_dir, f"{frame}.json"), records[frame])
                continue
            cached = cached_record(cache_dir, FINDER_CACHE, keys[frame]) if cache_dir else None
            if cached is not None:
                records[frame] = {**cached, "frame": frame}
                write_json(Path(out_dir, f"{frame}.json"), records[frame])
            else:
                pending.append((frame, path))
        from_cache = len(records)
        seconds = 0.0
        while pending:
            if detector is None:
                detector = CharacterDetector(model_dir, device, box_threshold, text_threshold, batch_size)
                loads = 1
                lines.append(f"loaded {detector.model_name} from {model_dir} on {detector.device} ({detector.dtype})")
                if (why := cpu_because(device, detector.device)) is not None:
                    lines.append(f"the GPU is not usable, so the CPU: {why}")
            # A batch is read just before it runs: a 10,000-frame job never holds them all.
            chunk, pending = pending[:detector.batch_size], pending[detector.batch_size:]
            images = {}
            for frame, path in chunk:
                try:
                    images[frame] = read_image(path)
                except (FrameDecodeError, OSError) as error:
                    records[frame] = failed_record(frame, model_dir, error)
                    lines.append(f"{frame}: {records[frame]['error']}")
            started = time.perf_counter()
            found = detector.detect(list(images.values()), prompts) if images else []
            seconds += time.perf_counter() - started
            for frame, detections in zip(images, found, strict=True):
                records[frame] = frame_record(frame, detector, prompts, detections)
                if cache_dir:
                    # The entry's name rides along, so the merge keeps the entries current frames use.
                    records[frame]["cache"] = entry_name(FINDER_CACHE, keys[frame])
                    store_record(cache_dir, FINDER_CACHE, keys[frame], records[frame])
            for frame, _ in chunk:
                write_json(Path(out_dir, f"{frame}.json"), records[frame])
        failed = sum(1 for record in records.values() if not record["ok"])
        if detector is not None:
            lines.append(f"device: {detector.device}, dtype: {detector.dtype}, batch size: {detector.batch_size}")
        lines.append(f"frames: {len(frames)} (detected {len(frames) - failed}, failed {failed}, "
                     f"from cache {from_cache}); "
                     f"detections: {sum(len(r.get('detections', [])) for r in records.values())}")
        lines.append(f"detection: {seconds:.3f} s")
        lines.append(f"model loads: {loads}")
    return records


def _frames_argument(value: str) -> dict[str, str]:
    frames = read_json(value)
    if not isinstance(frames, dict):
        raise argparse.ArgumentTypeError("expected a JSON object {frame_id: frame_path}")
    return {str(frame): str(path) for frame, path in frames.items()}


def main(argv: list[str] | None = None) -> int:
    # Not joblog.batch_step_parser: this step writes per-frame files, it has no manifest.
    parser = argparse.ArgumentParser(prog="python -m frameloom.detect_step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", required=True, type=_frames_argument,
                        help="JSON file {frame_id: frame_path}")
    parser.add_argument("--out-dir", required=True, help="one <frame_id>.json per frame goes here")
    parser.add_argument("--model-dir", required=True, help="the Grounding DINO snapshot folder")
    parser.add_argument("--prompts", nargs="+", default=list(DEFAULT_PROMPTS), help="phrases to detect")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--box-threshold", type=float, default=0.3)
    parser.add_argument("--text-threshold", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4, help="frames per forward pass")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and OpenCV")
    parser.add_argument("--cache-dir", help="content-addressed detections: frames found here are not detected again")
    parser.add_argument("--model-fingerprint", default="",
                        help="the model files' fingerprint (RunConfig.finder): new weights, new cache keys")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    if args.cache_dir and not args.model_fingerprint:
        parser.error("--cache-dir needs --model-fingerprint (new weights must not be answered from the cache)")
    import cv2
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)
    run_detections(args.frames, args.out_dir, args.model_dir, args.prompts, args.log, args.device,
                   args.box_threshold, args.text_threshold, args.batch_size, cache_dir=args.cache_dir,
                   model_fingerprint=args.model_fingerprint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
