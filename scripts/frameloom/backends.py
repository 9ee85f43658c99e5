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
from .models import model_named
from .segmentation import GrabCutSegmenter

# How a backend's reported name says a classical method stood in for a missing model.
FALLBACK_MARK = "(fallback:"
CLASSICAL_SEGMENTATION = "grabcut"
CLASSICAL_INPAINTING = "opencv"


def model_requirements(segment_cfg: dict | None, model_paths: dict, models_dir: Path,
                       enhance_cfg: dict | None = None) -> dict[str, dict]:
    """The model files the settings ask for: {step: {name, path, present}}.

    ``segment_cfg`` None: no enabled strategy segments. Part of the rule
    params, so weights appearing or disappearing reruns the step.
    """
    wanted = {}
    if segment_cfg and segment_cfg["segmentation_model"] != CLASSICAL_SEGMENTATION:
        wanted["segmentation"] = segment_cfg["segmentation_model"]
    if segment_cfg and segment_cfg["inpainting_model"] != CLASSICAL_INPAINTING:
        wanted["inpainting"] = "lama"
    if enhance_cfg and enhance_cfg["enabled"]:
        steps = enhance_cfg["enhancement_steps"]
        for step, name in (("upscale", enhance_cfg["upscale_model"]),
                           ("face_enhance", enhance_cfg["face_enhance_model"])):
            if step in steps and name != "lanczos":
                wanted[step] = name
    models = {step: model_named(name) for step, name in wanted.items()}
    wanted = {step: (name, model_paths.get(models[step].key, models[step].default_path))
              for step, name in wanted.items()}
    return {
        step: {"name": name, "path": str(models_dir / relative), "present": (models_dir / relative).is_file()}
        for step, (name, relative) in wanted.items()
    }


def download_hint(model_name: str) -> str:
    """The command that fetches a model (``--allow-unverified`` where no sha256 is pinned for it)."""
    model = model_named(model_name)
    unverified = "" if model.pinned else " --allow-unverified"
    return f"python -m frameloom.download --models {model.download}{unverified}"


def missing_models(requirements: dict[str, dict]) -> list[str]:
    """One line per required model file that is absent, naming the download command."""
    return [
        f"{req['name']} weights missing: {req['path']} (download: {download_hint(req['name'])})"
        for req in requirements.values()
        if not req["present"]
    ]


class Backends:
    """The segmenter and inpainter of one job, each built on first use and then reused."""

    def __init__(self, segment_cfg: dict, requirements: dict[str, dict], device: str = "auto",
                 references: dict | None = None, enhance_cfg: dict | None = None, batch_size: int = 8):
        self._cfg = segment_cfg
        self._batch_size = batch_size  # processing.batch_size: images per forward pass
        self._enhance_cfg = enhance_cfg
        self._requirements = requirements
        self._device = device
        self._references = references or {"files": {}, "threshold": 1.0}
        self._built: dict[str, tuple[object, str]] = {}
        self.loads: Counter = Counter()
        # {model name: {device, precision, cpu_because}}: where each loaded model runs, and why
        # on the CPU when the GPU was asked for with "auto" and is not usable.
        self.devices: dict[str, dict] = {}

    def _backend(self, step: str, build_model, fallback, fallback_name: str):
        """The step's (backend, reported name), built on first use: the model when its
        weights are present, else ``fallback`` (an object or None) named as standing in."""
        if step not in self._built:
            req = self._requirements.get(step)
            if req and req["present"]:
                from .devices import cpu_because

                model = build_model(req)
                self._built[step] = (model, model.name)
                self.devices[model.name] = {"device": model.device, "precision": model.precision,
                                            "cpu_because": cpu_because(self._device, model.device)}
            elif req:
                note = f"{FALLBACK_MARK} {req['name']} weights missing: {req['path']})"
                self._built[step] = (fallback, f"{fallback_name} {note}")
            else:
                self._built[step] = (fallback, fallback_name)
            self.loads[self._built[step][1]] += 1
        return self._built[step]

    def segmenter(self):
        def sam2(req):
            from .sam2_backend import SAM2Segmenter

            return SAM2Segmenter(req["name"], req["path"], device=self._device,
                                 points_per_side=self._cfg["points_per_side"],
                                 min_instance_size=self._cfg["min_instance_size"])

        grabcut = GrabCutSegmenter(min_instance_size=self._cfg["min_instance_size"])
        return self._backend("segmentation", sam2, grabcut, grabcut.name)

    def inpainter(self):
        def lama(req):
            from .lama_backend import LamaInpainter

            return LamaInpainter(req["path"], device=self._device)

        # Navier-Stokes smears less than Telea on the large, smooth holes characters leave.
        classical = OpenCVInpainter(method="ns")
        return self._backend("inpainting", lama, classical, classical.name)

    def upscaler(self):
        """(Real-ESRGAN or None, name): None means upscale with Lanczos; the name says why."""
        def realesrgan(req):
            from .esrgan_backend import RealESRGANUpscaler

            return RealESRGANUpscaler(req["name"], req["path"], device=self._device,
                                      tile=self._enhance_cfg["upscale_tile"],
                                      outscale=self._enhance_cfg["upscale_factor"])

        return self._backend("upscale", realesrgan, None, "lanczos")

    def face_restorer(self):
        """(CodeFormer / GFPGAN or None, name): None means faces are left as they are."""
        def restorer(req):
            from .face_restore import load_face_restorer

            options = {"max_drift": self._enhance_cfg["identity_max_drift"], "batch_size": self._batch_size}
            if req["name"] == "CodeFormer":
                options["fidelity"] = self._enhance_cfg["face_enhance_fidelity"]
            return load_face_restorer(req["name"].lower(), req["path"], device=self._device, **options)

        return self._backend("face_enhance", restorer, None, "none: no face-restoration model")

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
