"""The kohya training folder and the rejected folder, built from the curation's selection."""

from __future__ import annotations

from pathlib import Path

from .exports import concept_of
from .imageio import building_folder, link_or_copy


def build_training_folder(selection: dict, training_dir: str, concepts: dict[str, dict],
                          vlm_captions: dict[str, dict] | None = None) -> int:
    """Fill ``training_dir`` with one kohya concept folder per entry of ``concepts``
    (exports.plan_concepts) holding the curated images and their captions, atomically.

    Curated names carry the strategy prefix, so they are unique even if a frame
    is called "x_character". An augmented variant takes its source's caption;
    an image the caption step captioned gets that caption, the others link
    their template caption. Returns the number of images. The folder is
    assembled beside the target and renamed into place, so a crash never leaves
    a half-merged dataset.
    """
    vlm_captions = vlm_captions or {}
    with building_folder(training_dir) as staging:
        for name in concepts:
            (staging / name).mkdir()
        records = selection["kept"] + selection["augmented"]
        for record in records:
            concept = staging / concept_of(concepts, record["strategy"])
            stem = Path(record["curated"]).stem
            link_or_copy(record["curated"], concept / f"{stem}.png")
            if record["image"] in vlm_captions:
                (concept / f"{stem}.txt").write_text(vlm_captions[record["image"]]["caption"] + "\n",
                                                     encoding="utf-8")
            elif record["caption"]:
                link_or_copy(record["caption"], concept / f"{stem}.txt")
    return len(records)


def build_rejected_folder(selection: dict, rejected_dir: str) -> int:
    """``rejected_dir/{reason}/``: a link to every curated image the curation removed (nothing is deleted)."""
    with building_folder(rejected_dir) as staging:
        for entry in selection["rejected"]:
            folder = staging / (entry.get("filter") or entry["reason"])
            folder.mkdir(exist_ok=True)
            link_or_copy(entry["curated"], folder / Path(entry["curated"]).name)
    return len(selection["rejected"])
