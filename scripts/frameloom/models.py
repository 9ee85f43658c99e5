"""The model registry: every model frameloom loads, described once.

Each entry names its ``model_paths`` key (strategy_configs.yaml), the names a
strategy's settings give it (``segmentation_model: sam2_hiera_large``), its
``download-models`` name, the adapter that loads it and the conda env it runs in.
Where its file(s) come from (URL, sha256 or pinned revision, size) and so its
default path under ``models_dir`` is frameloom.model_files' ``MODELS``. The backends,
the missing-weights check and the download hint read this; tests/test_registry.py
holds the schema's ``model_paths`` defaults and strategy_configs.yaml to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .model_files import GROUPS, MODELS


@dataclass(frozen=True)
class Model:
    key: str  # its model_paths key
    download: str  # its download-models name: one file, or the group of a pinned snapshot
    loader: str  # the adapter that loads it
    env: str | None  # envs/<env>.yaml of the job that runs it; None: the main environment
    config_names: tuple[str, ...] = ()  # how strategy settings name it, when not by its key
    serves: str | None = None  # the model requirement it can fill (backends.model_requirements)

    @property
    def files(self) -> list:
        return [MODELS[name] for name in GROUPS.get(self.download, (self.download,))]

    @property
    def default_path(self) -> str:
        """Under models_dir: the file, or the folder of a multi-file snapshot."""
        files = self.files
        return files[0].relative_path if len(files) == 1 else Path(files[0].relative_path).parent.as_posix()

    @property
    def pinned(self) -> bool:
        """Every file has a published sha256 (or is pinned by a snapshot revision)."""
        return all(model.sha256 is not None for model in self.files)


_SAM2 = "frameloom.sam2_backend.SAM2Segmenter"
_ESRGAN = "frameloom.esrgan_backend.RealESRGANUpscaler"
_FACE_RESTORER = "frameloom.face_restore.load_face_restorer"
_FACES = "frameloom.faces.load_face_detector"

MODEL_REGISTRY: dict[str, Model] = {model.key: model for model in (
    *(Model(name, name, _SAM2, "sam2", serves="segmentation") for name in MODELS if name.startswith("sam2")),
    Model("lama", "lama", "frameloom.lama_backend.LamaInpainter", "lama", serves="inpainting"),
    Model("realesrgan", "realesrgan", _ESRGAN, "realesrgan", ("RealESRGAN_x4plus_anime_6B",), "upscale"),
    Model("realesr-animevideov3", "realesr-animevideov3", _ESRGAN, "realesrgan", serves="upscale"),
    Model("codeformer", "codeformer", _FACE_RESTORER, "face_restore", ("CodeFormer",), "face_enhance"),
    Model("gfpgan", "gfpgan", _FACE_RESTORER, "face_restore", ("GFPGAN",), "face_enhance"),
    Model("qwen2_vl", "qwen2_vl", "frameloom.vlm_backend.QwenVLCaptioner", "vlm"),
    Model("grounding_dino", "grounding_dino_tiny", "frameloom.detector.CharacterDetector", "detector"),
    Model("dinov2", "dinov2_small", "frameloom.embedding.ImageEmbedder", "embedding"),
    Model("yunet", "yunet", _FACES, None),
    Model("anime_face_cascade", "anime_face_cascade", _FACES, None),
)}
_BY_CONFIG_NAME = {name: model for model in MODEL_REGISTRY.values() for name in (model.key, *model.config_names)}


def requirement_env(requirement: str) -> str:
    """The conda env of a model step's job: the env of the models that can fill its requirement
    (frameloom.registry.MODEL_STEPS), which share one."""
    envs = {model.env for model in MODEL_REGISTRY.values() if model.serves == requirement}
    if len(envs) != 1:
        raise ValueError(f"the models serving {requirement!r} must share one env, not {sorted(map(str, envs))}")
    return envs.pop()


def model_named(name: str) -> Model:
    """The model a strategy's settings (or model_paths) call ``name``."""
    try:
        return _BY_CONFIG_NAME[name]
    except KeyError:
        raise KeyError(f"no model named {name!r} (known: {', '.join(sorted(_BY_CONFIG_NAME))})") from None
