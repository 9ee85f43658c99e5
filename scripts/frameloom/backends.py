"""Which backend runs each model step, built once per job.

A strategy's config names a model (``segmentation_model``, ``inpainting_model``).
When its weights are present, that model runs; otherwise (``strict_models``
off) the classical method runs and its reported name says which model it
stands in for and why. Models are imported and loaded on first use only, so a
batch whose frames all come from the cache never loads one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .inpainting import OpenCVInpainter
from .segmentation import GrabCutSegmenter

CLASSICAL_SEGMENTATION = "grabcut"
CLASSICAL_INPAINTING = "opencv"


def model_requirements(segment_cfg: dict, model_paths: dict, models_dir: Path) -> dict[str, dict]:
    """The model files the segment settings ask for: {step: {name, path, present}}.

    Part of the rule params, so weights appearing or disappearing reruns the step.
    """
    wanted = {}
    if segment_cfg["segmentation_model"] != CLASSICAL_SEGMENTATION:
        name = segment_cfg["segmentation_model"]
        wanted["segmentation"] = (name, model_paths.get(name, f"segmentation/{name}.pt"))
    if segment_cfg["inpainting_model"] != CLASSICAL_INPAINTING:
        wanted["inpainting"] = ("lama", model_paths.get("lama", "inpainting/big-lama.pt"))
    return {
        step: {"name": name, "path": str(models_dir / relative), "present": (models_dir / relative).is_file()}
        for step, (name, relative) in wanted.items()
    }


def missing_models(requirements: dict[str, dict]) -> list[str]:
    """One line per required model file that is absent, naming the download command."""
    return [
        f"{req['name']} weights missing: {req['path']} "
        f"(download: python -m frameloom.download --models {req['name']})"
        for req in requirements.values()
        if not req["present"]
    ]


class Backends:
    """The segmenter and inpainter of one job, each built on first use and then reused."""

    def __init__(self, segment_cfg: dict, requirements: dict[str, dict], device: str = "auto",
                 references: dict | None = None):
        self._cfg = segment_cfg
        self._requirements = requirements
        self._device = device
        self._references = references or {"files": {}, "threshold": 1.0}
        self._built: dict[str, tuple[object, str]] = {}
        self.loads: Counter = Counter()

    def _fallback_note(self, step: str) -> str:
        req = self._requirements[step]
        return f"(fallback: {req['name']} weights missing: {req['path']})"

    def segmenter(self):
        if "segmentation" not in self._built:
            req = self._requirements.get("segmentation")
            if req and req["present"]:
                from .sam2_backend import SAM2Segmenter

                model = SAM2Segmenter(req["name"], req["path"], device=self._device,
                                      points_per_side=self._cfg["points_per_side"],
                                      min_instance_size=self._cfg["min_instance_size"])
                self._built["segmentation"] = (model, model.name)
            else:
                model = GrabCutSegmenter(min_instance_size=self._cfg["min_instance_size"])
                name = model.name if req is None else f"{model.name} {self._fallback_note('segmentation')}"
                self._built["segmentation"] = (model, name)
            self.loads[self._built["segmentation"][1]] += 1
        return self._built["segmentation"]

    def matcher(self):
        """The reference matcher, or None when the user gave no reference images."""
        if "matcher" not in self._built:
            matcher = None
            if self._references["files"]:
                from .target import ReferenceMatcher

                matcher = ReferenceMatcher.from_paths(list(self._references["files"]),
                                                      threshold=self._references["threshold"])
            self._built["matcher"] = (matcher, matcher.name if matcher else "")
        return self._built["matcher"][0]

    def inpainter(self):
        if "inpainting" not in self._built:
            req = self._requirements.get("inpainting")
            if req and req["present"]:
                from .lama_backend import LamaInpainter

                model = LamaInpainter(req["path"], device=self._device)
                self._built["inpainting"] = (model, model.name)
            else:
                # Navier-Stokes smears less than Telea on the large, smooth holes characters leave.
                model = OpenCVInpainter(method="ns")
                name = model.name if req is None else f"{model.name} {self._fallback_note('inpainting')}"
                self._built["inpainting"] = (model, name)
            self.loads[self._built["inpainting"][1]] += 1
        return self._built["inpainting"]
