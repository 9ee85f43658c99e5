"""The batched VLM caption step: one job captions every image of a batch of frames.

Each frame's meta file lists its images, their template captions, the subject
(character or background plate) and the facts the strategy applied. The job
loads the VLM once, captions the images ``captioning.batch_size`` at a time,
checks each answer (frameloom.captions.check_vlm_text) and frames it with the
trigger word, prefix and facts; a rejected answer keeps the template caption.
Results go to the content-addressed cache (frameloom.stepcache), an entry
``<cache>/captions/<key>/record.json`` per image (the key hashes the image bytes,
the template caption, the facts and the settings, the model files' fingerprint
included), so re-batching after a plan change recomputes nothing; the job's
manifest maps each image to its caption record for the merge.

    python -m frameloom.caption_step --params results/params/captions/<batch>.json \\
        --cache-dir results/.cache --manifest results/captions/batches/<batch>.json --log L
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import captions
from .imageio import read_image, read_json, write_json
from .joblog import batch_step_parser, job_log
from .stepcache import CAPTIONS, cached_record, content_key, store_record

KEY_VERSION = "1"  # bump when the caption records change for the same inputs
VLM, TEMPLATE = "qwen2_vl", "template"


def caption_key(image_path: str, entry: dict, template: str, settings: dict) -> str:
    """Image bytes, subject, template, facts and settings (the model's file fingerprint included)."""
    return content_key(f"{KEY_VERSION}:{entry['subject']}", Path(image_path).read_bytes(),
                       [template, entry["facts"], settings])


def vlm_input(image_path: str, max_pixels: int) -> np.ndarray:
    """RGB pixels the VLM sees: alpha dropped (cut-outs are already on grey), at most ``max_pixels``."""
    import cv2

    image = read_image(image_path)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = np.ascontiguousarray(image[..., :3])
    height, width = image.shape[:2]
    if height * width > max_pixels:
        scale = (max_pixels / (height * width)) ** 0.5
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prompt_for(subject: str, cfg: dict) -> str:
    return f"{cfg['prompts'][subject]} {cfg['style_instructions'][cfg['style']]}"


def caption_record(answer: str, entry: dict, template: str, settings: dict) -> dict:
    """The caption of one image from the model's raw answer: the VLM's, or the template's when rejected."""
    cfg = settings["captioning"]
    text = captions.clean_vlm_text(answer, cfg["style"], settings["trigger_word"])
    rejected = captions.check_vlm_text(text, cfg["max_caption_chars"])
    if rejected:
        return {"caption": template, "source": TEMPLATE, "rejected": rejected, "answer": answer}
    caption = captions.vlm_caption(entry["subject"], settings["trigger_word"], settings["caption_prefix"],
                                   text, entry["facts"])
    return {"caption": caption, "source": VLM, "rejected": None, "answer": answer}


def _caption_chunk(captioner, chunk: list, subject: str, settings: dict, lines: list[str]) -> list[dict]:
    """Caption records of one generate() batch; a failed batch keeps its templates, the error named."""
    cfg = settings["captioning"]
    images = [vlm_input(entry["image"], cfg["max_image_pixels"]) for entry, _, _ in chunk]
    try:
        answers = captioner.caption(images, prompt_for(subject, cfg))
    except Exception as error:  # noqa: BLE001 - any model failure: keep the templates, name it in the report
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        lines.append(f"generation failed for {len(chunk)} images: {message}")
        return [{"caption": template, "source": TEMPLATE, "rejected": captions.REJECT_GENERATION, "answer": None,
                 "error": message} for _, template, _ in chunk]
    return [caption_record(answer, entry, template, settings)
            for (entry, template, _), answer in zip(chunk, answers, strict=True)]


def load_captioner(settings: dict):
    from .vlm_backend import QwenVLCaptioner

    cfg = settings["captioning"]
    return QwenVLCaptioner(settings["model"]["path"], settings["device"], cfg["max_new_tokens"])


def run_captions(members: dict[str, str], settings: dict, cache_dir: str, manifest_path: str, log_path: str,
                 captioner=None) -> dict:
    """Caption every image of the member frames' metas missing from the cache; write the manifest.

    ``members``: {frame: meta path}. ``captioner`` (tests) replaces the VLM
    built from ``settings["model"]``; either way it is built at most once.
    """
    cfg = settings["captioning"]
    with job_log(log_path, "caption batch", live=True) as lines:
        records, pending = {}, []
        for _, meta_path in sorted(members.items()):
            for entry in read_json(meta_path)["outputs"]:
                if not entry["caption"]:
                    continue
                template = Path(entry["caption"]).read_text(encoding="utf-8").strip()
                key = caption_key(entry["image"], entry, template, settings)
                cached = cached_record(cache_dir, CAPTIONS, key)
                if cached is not None:
                    records[entry["image"]] = {**cached, "key": key}
                else:
                    pending.append((entry, template, key))
        load_error = None
        if pending and captioner is None:
            try:
                captioner = load_captioner(settings)
                lines.append(f"loaded {captioner.name} on {captioner.device}")
            except Exception as error:  # noqa: BLE001 - damaged weights: templates for all, the cause named
                load_error = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}".rstrip(": ")
                lines.append(f"the captioner did not load ({load_error}): every image keeps its template caption")
        # One prompt per subject, so a generate() batch shares it.
        by_subject: dict[str, list] = {}
        for item in pending:
            by_subject.setdefault(item[0]["subject"], []).append(item)
        for subject, items in sorted(by_subject.items()):
            for start in range(0, len(items), cfg["batch_size"]):
                chunk = items[start:start + cfg["batch_size"]]
                made = ([{"caption": template, "source": TEMPLATE, "rejected": captions.REJECT_LOAD, "answer": None,
                          "error": load_error} for _, template, _ in chunk] if load_error
                        else _caption_chunk(captioner, chunk, subject, settings, lines))
                for (entry, _, key), record in zip(chunk, made, strict=True):
                    if record["rejected"] not in (captions.REJECT_GENERATION, captions.REJECT_LOAD):
                        store_record(cache_dir, CAPTIONS, key, record)  # errors are retried next run
                    records[entry["image"]] = {**record, "key": key}
        write_json(manifest_path, {"images": dict(sorted(records.items()))})
        sources = {name: sum(1 for r in records.values() if r["source"] == name) for name in (VLM, TEMPLATE)}
        lines.append(f"images: {len(records)} (captioned {len(pending)}, from cache {len(records) - len(pending)}); "
                     f"sources {sources}")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = batch_step_parser("python -m frameloom.caption_step", __doc__)
    parser.add_argument("--params", required=True,
                        help='JSON file: {"members": {frame: meta_path}, "settings": RunConfig.caption_settings()}')
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    params = read_json(args.params)
    run_captions(params["members"], params["settings"], args.cache_dir, args.manifest, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
