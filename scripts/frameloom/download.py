"""Download the model weights the workflow can use, verified against published sha256 hashes.

    python -m frameloom.download --models sam2 lama realesrgan codeformer dinov2_small [--models-dir DIR]

Each file goes to ``{models_dir}/{relative_path}``, the path ``model_paths`` in
``config/strategy_configs.yaml`` expects by default. Downloads stream into a
``.part`` file beside the target; an interrupted download continues from where
it stopped (HTTP Range) on the next run, and the file is renamed into place
only once its sha256 matches. Files already present with the right hash are
skipped. A model without a published hash is refused unless explicitly allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per socket operation, not per file
USER_AGENT = "frameloom-model-download"
PROGRESS_INTERVAL_S = 0.25  # between redraws of the live bar on a terminal
LOG_INTERVAL_S = 10.0  # between progress lines when stderr is a log file


@dataclass(frozen=True)
class ModelFile:
    name: str  # the model's name in the workflow config (model_paths key or segmentation_model value)
    url: str
    relative_path: str  # under models_dir
    sha256: str | None  # None: no published hash found, downloaded only with allow_unverified
    size: int | None = None  # bytes; shown in progress when the server sends no length


_SAM2 = "https://dl.fbaipublicfiles.com/segment_anything_2"


def _sam2(name: str, release: str, sha256: str, size: int | None = None) -> ModelFile:
    """A SAM 2 checkpoint: Meta's URL for the release, stored as segmentation/{name}.pt."""
    return ModelFile(name, f"{_SAM2}/{release}/{name}.pt", f"segmentation/{name}.pt", sha256, size)

_QWEN2_VL = "Qwen/Qwen2-VL-2B-Instruct"
_QWEN2_VL_REVISION = "895c3a49bc3fa70a340399125c650a463535e71c"
# Every file transformers reads from the snapshot (plus its Apache-2.0 LICENSE):
# name, sha256, bytes.
_QWEN2_VL_FILES = (
    ("LICENSE", "832dd9e00a68dd83b3c3fb9f5588dad7dcf337a0db50f7d9483f310cd292e92e", 11_343),
    ("chat_template.json", "ad60d90252ed0b0705ba14e2d0ad0fec0beac1ea955642b54059b36052d8bc96", 1_050),
    ("config.json", "422adefa19e62dd175961cec85bc0400344fe5bf9b22bd1182e05aaae78556e0", 1_196),
    ("generation_config.json", "d2864bf1edea5863d331edfff48106b586a366f5a2c41aa77731fadc53aa25d2", 272),
    ("merges.txt", "599bab54075088774b1733fde865d5bd747cbcc7a547c5bc12610e874e26f5e3", 1_671_839),
    ("model-00001-of-00002.safetensors", "994ac2b03f97de8bc647d0fe5eba2e4b632b3e28dc03574c29bdfc36cf47e1b9",
     3_988_609_112),
    ("model-00002-of-00002.safetensors", "92540d8353c8d226a589a3b179bdb33851c970ee2cc2ac7ba035f79425e7b833",
     429_441_656),
    ("model.safetensors.index.json", "260ab9fa1418d6d6ab79daa1d9da2c47264f3b72edb4630fc799077ac67d27c6", 56_411),
    ("preprocessor_config.json", "b5eaad0c2815f07631535dcc58f3c462b0d73693638ad21d19f3c50820eae1cc", 347),
    ("tokenizer.json", "cb63a0a23eef3d5b01063a9880a1925a65aaf4d1591d519910ee3527852950a0", 7_029_741),
    ("tokenizer_config.json", "ff5c4fd898fe8c39591eb70e5d39d2782802d4204d6ae9ba1223252f354842a0", 4_190),
    ("vocab.json", "ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910", 2_776_833),
)


def _qwen2_vl(file_name: str, sha256: str, size: int) -> ModelFile:
    """One file of the Qwen2-VL-2B-Instruct snapshot, at the pinned revision, under
    vlm/Qwen2-VL-2B-Instruct/ (the default model_paths.qwen2_vl)."""
    return ModelFile(f"qwen2_vl/{file_name}",
                     f"https://huggingface.co/{_QWEN2_VL}/resolve/{_QWEN2_VL_REVISION}/{file_name}",
                     f"vlm/Qwen2-VL-2B-Instruct/{file_name}", sha256, size)


_GROUNDING_DINO = "IDEA-Research/grounding-dino-tiny"
_GROUNDING_DINO_REVISION = "a2bb814dd30d776dcf7e30523b00659f4f141c71"
# Every file AutoProcessor / AutoModelForZeroShotObjectDetection read from the snapshot
# (not its duplicate pytorch_model.bin): name, sha256, bytes.
_GROUNDING_DINO_FILES = (
    ("added_tokens.json", "909e96cb32d92ce728a01bc99850cbba26196d74115c17ebeb019275412588f2", 82),
    ("config.json", "eec82c5ab66e16df12a9a212e68ac011779927c2536cf9078658e35d85f0c67a", 1_644),
    ("model.safetensors", "1a2412ef99bd74bcd3c2a246fa1e48581f8889a1300c9051974741314fc042f3", 689_359_096),
    ("preprocessor_config.json", "8454179ba95e2ad22947835aad7b45862a601fc0055ab88bf1ee70892d3aea60", 457),
    ("special_tokens_map.json", "b6d346be366a7d1d48332dbc9fdf3bf8960b5d879522b7799ddba59e76237ee3", 125),
    ("tokenizer.json", "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66", 711_396),
    ("tokenizer_config.json", "d40ab645b68211910b9170d22433d43186a6ec8ee6fd10ba170524b25bf4fb56", 1_237),
    ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231_508),
)


def _grounding_dino(file_name: str, sha256: str, size: int) -> ModelFile:
    """One file of the grounding-dino-tiny snapshot, at the pinned revision, under
    detection/grounding-dino-tiny/ (frameloom.detector.DEFAULT_MODEL_DIR)."""
    return ModelFile(f"grounding_dino_tiny/{file_name}",
                     f"https://huggingface.co/{_GROUNDING_DINO}/resolve/{_GROUNDING_DINO_REVISION}/{file_name}",
                     f"detection/grounding-dino-tiny/{file_name}", sha256, size)


_DINOV2 = "facebook/dinov2-small"
_DINOV2_REVISION = "ed25f3a31f01632728cabb09d1542f84ab7b0056"
# Every file AutoImageProcessor / AutoModel read from the snapshot: name, sha256 (sizes unpublished).
_DINOV2_FILES = (
    ("config.json", "1809f83e3bdb1609a501a610ad4a742f4fd8ae44d72ca4aa0df52d1f2ac8628d", None),
    ("model.safetensors", "ae1e99fcefd534ed978cdeb8326f08030c96e28b7a81ffcbc98a857c84d14be1", None),
    ("preprocessor_config.json", "14e780d86fa1861f8751f868d7f45425b5feb55c38ca26f152ca5097ab30f828", None),
)


def _dinov2(file_name: str, sha256: str, size: int | None) -> ModelFile:
    """One file of the dinov2-small snapshot, at the pinned revision, under identity/dinov2-small/
    (frameloom.embedding.DEFAULT_MODEL_DIR)."""
    return ModelFile(f"dinov2_small/{file_name}",
                     f"https://huggingface.co/{_DINOV2}/resolve/{_DINOV2_REVISION}/{file_name}",
                     f"identity/dinov2-small/{file_name}", sha256, size)


MODELS: dict[str, ModelFile] = {
    model.name: model
    for model in (
        # SAM 2 (2024-07-29), Meta's official download URLs. sha256: the checksums pinned by
        # mazurowski-lab/SlicerSegmentWithSAM (SegmentWithSAM/SegmentWithSAM.py, verified by 3D
        # Slicer's downloadFileIntoCache) and, identically, the "sam2.0" HASHES that
        # computational-cell-analytics/micro-sam (micro_sam/v2/util.py) passed to pooch.
        # Sizes as recorded by other repositories pinning the same hashes; base_plus's unknown.
        _sam2("sam2_hiera_tiny", "072824",
              "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125", 155_906_050),
        _sam2("sam2_hiera_small", "072824",
              "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3", 184_309_650),
        _sam2("sam2_hiera_base_plus", "072824", "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071"),
        _sam2("sam2_hiera_large", "072824",
              "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b", 897_952_466),
        # SAM 2.1 (2024-09-29), Meta's official download URLs. sha256: the HASHES that
        # computational-cell-analytics/micro-sam (micro_sam/v2/util.py) verifies through pooch;
        # other repositories record the same values as the Hugging Face LFS SHA256 of
        # facebook/sam2.1-hiera-* (tiny at revision de431c40), with these sizes.
        _sam2("sam2.1_hiera_tiny", "092824",
              "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69", 156_008_466),
        _sam2("sam2.1_hiera_small", "092824",
              "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", 184_416_285),
        _sam2("sam2.1_hiera_base_plus", "092824",
              "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5", 323_606_802),
        _sam2("sam2.1_hiera_large", "092824",
              "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318", 898_083_611),
        # Big-LaMa as TorchScript, the export simple-lama-inpainting loads, from its original
        # publisher (Sanster, author of lama-cleaner/IOPaint, whose lama.py pins this URL with
        # md5 e3aa4aaa15225a33ec84f9f4bc47e500). sha256 and size: as pinned by several independent
        # repositories for that same artifact (one notes it was computed from the file matching
        # IOPaint's md5). simple-lama's own re-upload (enesmsahin/.../v0.1.0/big-lama.pt) is
        # recorded with conflicting sizes and hashes, so it is not used.
        ModelFile("lama", "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
                  "inpainting/big-lama.pt",
                  "344c77bbcb158f17dd143070d1e789f38a66c04202311ae3a258ef66667a9ea9", 205_669_692),
        # Real-ESRGAN release v0.2.2.4. sha256: the AUR package's sha256sums for this asset, also
        # pinned by other download scripts (one notes it was measured from the release file) and
        # matching Civitai's record of the file; 17,938,799 bytes.
        ModelFile("realesrgan",
                  "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
                  "enhancement/RealESRGAN_x4plus_anime_6B.pth",
                  "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", 17_938_799),
        # CodeFormer release v0.1.0 (S-Lab License 1.0, non-commercial). sha256: SwarmUI FaceTools'
        # ModelSha256Checksums for codeformer-v0.1.0.pth, pinned identically by several other
        # repositories; 376,637,898 bytes.
        ModelFile("codeformer", "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
                  "enhancement/codeformer.pth",
                  "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7", 376_637_898),
        # GFPGAN v1.4 (Apache-2.0), the alternative face restorer, from the v1.3.0 release. sha256: as
        # pinned, identically, by several independent download manifests for this asset.
        ModelFile("gfpgan", "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
                  "enhancement/GFPGANv1.4.pth",
                  "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"),
        # Real-ESRGAN's anime video model, release v0.2.5.0: no independently published sha256 was
        # found, so it downloads only with --allow-unverified (the hint says so).
        ModelFile("realesr-animevideov3",
                  "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth",
                  "enhancement/realesr-animevideov3.pth", None),
        # OpenCV Zoo YuNet, the 2026may dynamic-input export (the one OpenCV 5 needs; 4.x loads it
        # too), pinned to opencv_zoo commit 47534e27 (a Git LFS file, hence media.githubusercontent).
        # sha256: as pinned by several repositories, one noting it matches the oid of upstream's
        # LFS pointer; 229,738 bytes.
        ModelFile("yunet",
                  "https://media.githubusercontent.com/media/opencv/opencv_zoo/47534e27c9851bb1128ccc0102f1145e27f23f98"
                  "/models/face_detection_yunet/face_detection_yunet_2026may.onnx",
                  "faces/face_detection_yunet.onnx",
                  "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0", 229_738),
        # nagadomi/lbpcascade_animeface at commit 4433ab1a (MIT). sha256: as pinned by several
        # repositories for the file at that commit, as downloaded (LF line endings).
        ModelFile("anime_face_cascade",
                  "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface"
                  "/4433ab1ae1166ea75acfe99eb0f18709dac329a0/lbpcascade_animeface.xml",
                  "faces/lbpcascade_animeface.xml",
                  "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30", 246_945),
        # Qwen2-VL-2B-Instruct (Apache-2.0), a Hugging Face snapshot: one entry per file, pinned
        # to revision 895c3a49. sha256 and sizes: the manifest of that revision as pinned,
        # identically, by several independent repositories (download scripts and model cards that
        # verify their local copies file by file).
        *(_qwen2_vl(*entry) for entry in _QWEN2_VL_FILES),
        # Grounding DINO tiny (Apache-2.0), the character finder, a Hugging Face snapshot pinned to
        # revision a2bb814d. sha256 and sizes: model.safetensors as the LFS SHA256 of that revision,
        # and every file as pinned, identically, by several independent repositories (download and
        # verification scripts that record the snapshot file by file at that revision).
        *(_grounding_dino(*entry) for entry in _GROUNDING_DINO_FILES),
        # DINOv2 small (Apache-2.0), the identity embedding, a Hugging Face snapshot pinned to
        # revision ed25f3a3. sha256: as pinned, identically, by several independent repositories
        # that verify this revision file by file (model.safetensors is its LFS SHA256).
        *(_dinov2(*entry) for entry in _DINOV2_FILES),
    )
}

# Names that stand for several files, or for the file the default config uses.
GROUPS: dict[str, tuple[str, ...]] = {
    "sam2": ("sam2_hiera_large",),  # the default segmentation_model
    "qwen2_vl": tuple(f"qwen2_vl/{file_name}" for file_name, _, _ in _QWEN2_VL_FILES),
    "grounding_dino_tiny": tuple(f"grounding_dino_tiny/{file_name}" for file_name, _, _ in _GROUNDING_DINO_FILES),
    "dinov2_small": tuple(f"dinov2_small/{file_name}" for file_name, _, _ in _DINOV2_FILES),
    "faces": ("yunet", "anime_face_cascade"),
    # Every verifiable model: one without a published sha256 is asked for by name.
    "all": tuple(name for name, model in MODELS.items() if model.sha256 is not None),
}


class DownloadError(RuntimeError):
    """A download failed; the message is one line naming the model and the cause."""


class DownloadRequestError(DownloadError):
    """The request itself is wrong (an unknown name, an unverified model without the flag): exit 2."""


@dataclass(frozen=True)
class Outcome:
    name: str
    path: Path
    action: str  # "present", "downloaded" or "resumed"
    bytes_fetched: int
    sha256: str
    verified: bool  # False only for a file without a published hash


class _StaleResume(Exception):
    """The partial file cannot be continued; start over from byte 0."""


def resolve_names(names: Iterable[str], registry: Mapping[str, ModelFile] | None = None) -> list[str]:
    """Expand group names and drop repeats, keeping the order given."""
    registry = MODELS if registry is None else registry
    resolved: list[str] = []
    for name in names:
        members = (name,) if name in registry else GROUPS.get(name, (name,))
        for member in members:
            if member not in registry:
                raise DownloadRequestError(
                    f"unknown model {name!r} (models: {', '.join(registry)}; groups: {', '.join(GROUPS)})")
            if member not in resolved:
                resolved.append(member)
    return resolved


def download(
    names: Iterable[str],
    models_dir: str | os.PathLike,
    base_url_override: str | None = None,
    progress: bool = True,
    *,
    allow_unverified: bool = False,
    registry: Mapping[str, ModelFile] | None = None,
) -> list[Outcome]:
    """Fetch each named model (or group) into ``models_dir``; returns what was done per file.

    ``base_url_override`` fetches every file from ``{base}/{relative_path}`` instead of its
    official URL (a mirror laid out like models_dir); the hashes are checked all the same.
    """
    registry = MODELS if registry is None else registry
    models = [registry[name] for name in resolve_names(names, registry)]
    unverified = [model.name for model in models if model.sha256 is None]
    # Checked before any transfer, so a refusal never leaves half a job done.
    if unverified and not allow_unverified:
        raise DownloadRequestError(
            f"no published sha256 for {', '.join(unverified)}; pass --allow-unverified to download anyway")
    root = Path(models_dir)
    outcomes = []
    for model in models:
        url = model.url if base_url_override is None else f"{base_url_override.rstrip('/')}/{model.relative_path}"
        outcomes.append(_download_one(model, url, root / model.relative_path, progress))
    return outcomes


def _download_one(model: ModelFile, url: str, target: Path, progress: bool) -> Outcome:
    if target.is_file():
        present_hash = _file_sha256(target).hexdigest()
        if model.sha256 is None or present_hash == model.sha256:
            return Outcome(model.name, target, "present", 0, present_hash, model.sha256 is not None)
        # A corrupt or different file is replaced, but only by a verified download.
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        return _fetch(model, url, target, part, progress)
    except _StaleResume:
        part.unlink(missing_ok=True)
        return _fetch(model, url, target, part, progress)


def _fetch(model: ModelFile, url: str, target: Path, part: Path, progress: bool) -> Outcome:
    """One transfer into ``part``, continuing it when it already holds a prefix of the file."""
    offset = part.stat().st_size if part.is_file() else 0
    digest = _file_sha256(part) if offset else hashlib.sha256()
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Nothing left to send: the .part is complete, or longer than the file.
            return _finish(model, url, target, part, digest, offset, fetched=0, resumed=True)
        raise DownloadError(f"{model.name}: HTTP {error.code} {error.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{model.name}: cannot reach {url}: {reason}") from None

    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and _content_range_start(response.headers.get("Content-Range")) != offset:
            raise _StaleResume
        if not resumed:
            offset, digest = 0, hashlib.sha256()  # the server sent the whole file
        length = response.headers.get("Content-Length")
        expected_bytes = int(length) if length is not None else None
        total = offset + expected_bytes if expected_bytes is not None else model.size
        bar = _ProgressBar(model.name, total, offset) if progress else None
        fetched = 0
        with open(part, "ab" if resumed else "wb") as handle:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    handle.write(chunk)
                    digest.update(chunk)
                    fetched += len(chunk)
                    if bar:
                        bar.update(offset + fetched)
                handle.flush()
                os.fsync(handle.fileno())
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(
                    f"{model.name}: download interrupted after {offset + fetched} bytes ({error!r}); "
                    f"run again to resume from {part}") from None
            finally:
                if bar:
                    bar.close()
    # http.client returns EOF, not an error, when the server closes early.
    if expected_bytes is not None and fetched < expected_bytes:
        raise DownloadError(
            f"{model.name}: download interrupted after {offset + fetched} of {offset + expected_bytes} bytes; "
            f"run again to resume from {part}")
    return _finish(model, url, target, part, digest, offset + fetched, fetched, resumed)


def _finish(model: ModelFile, url: str, target: Path, part: Path, digest, size: int, fetched: int,
            resumed: bool) -> Outcome:
    actual = digest.hexdigest()
    if model.sha256 is not None and actual != model.sha256:
        if resumed:
            raise _StaleResume  # the kept prefix may be from another file: one fresh try
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{model.name}: sha256 mismatch for {url}: expected {model.sha256}, got {actual} "
            f"({size} bytes, discarded)")
    os.replace(part, target)
    return Outcome(model.name, target, "resumed" if resumed else "downloaded", fetched, actual,
                   model.sha256 is not None)


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", header or "")
    return int(match.group(1)) if match else None


def _file_sha256(path: Path):
    """A sha256 object fed with the file's bytes, so a resumed download can keep feeding it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


# Where verified hashes are remembered, per file path, size and mtime: a 4 GB snapshot is
# hashed once, not on every run (the models folder itself may be read-only).
VERIFIED_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frameloom" / "verified-models.json"


def snapshot_check(group: str, models_dir: str | os.PathLike, cache_path: Path | None = None) -> tuple[bool, str]:
    """(complete, why not): whether every file of the pinned multi-file model ``group``
    (e.g. ``qwen2_vl``) is under ``models_dir`` with its pinned size and sha256, so a
    half-finished or foreign download never counts as the model."""
    cache_path = VERIFIED_CACHE if cache_path is None else cache_path
    try:
        verified = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        verified = {}
    learned = False
    for name in GROUPS[group]:
        model = MODELS[name]
        path = Path(models_dir) / model.relative_path
        if not path.is_file():
            return False, f"{Path(model.relative_path).name} is missing (an unfinished download?)"
        stat = path.stat()
        if model.size is not None and stat.st_size != model.size:
            return False, f"{Path(model.relative_path).name} has {stat.st_size} bytes, not the pinned {model.size}"
        stamp = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if verified.get(stamp) != model.sha256:
            actual = _file_sha256(path).hexdigest()
            if actual != model.sha256:
                return False, f"{Path(model.relative_path).name} does not match its pinned sha256"
            verified[stamp] = actual
            learned = True
    if learned:
        with contextlib.suppress(OSError):  # a read-only home only costs the hashing next time
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(cache_path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(verified, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, cache_path)
    return True, "every file of the pinned snapshot verified"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


class _ProgressBar:
    """Plain-text progress on stderr: redrawn in place on a terminal, periodic lines in a log."""

    WIDTH = 30

    def __init__(self, label: str, total: int | None, start: int):
        self.label, self.total, self.start = label, total, start
        self.stream = sys.stderr
        self.live = self.stream.isatty()
        self.began = self.last_shown = time.monotonic()
        self.done = start

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last_shown >= (PROGRESS_INTERVAL_S if self.live else LOG_INTERVAL_S):
            self.last_shown = now
            self._show()

    def close(self) -> None:
        self._show()
        if self.live:
            self.stream.write("\n")
        self.stream.flush()

    def _show(self) -> None:
        elapsed = max(time.monotonic() - self.began, 1e-6)
        rate = f"{_mib(round((self.done - self.start) / elapsed))} MiB/s"
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = round(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"{self.label} [{bar}] {fraction:4.0%} {_mib(self.done)}/{_mib(self.total)} MiB {rate}"
        else:
            line = f"{self.label} {_mib(self.done)} MiB {rate}"
        self.stream.write(f"\r{line}\x1b[K" if self.live else f"{line}\n")
        self.stream.flush()


def _describe(outcome: Outcome) -> str:
    check = "sha256 verified" if outcome.verified else f"UNVERIFIED, sha256 {outcome.sha256}"
    if outcome.action == "present":
        return f"{outcome.name}: already present, {check}: {outcome.path}"
    how = "resumed, fetched" if outcome.action == "resumed" else "downloaded"
    return f"{outcome.name}: {how} {_mib(outcome.bytes_fetched)} MiB, {check}: {outcome.path}"


def _registry_listing() -> list[str]:
    lines = []
    name_width = max(len(model.name) for model in MODELS.values())
    path_width = max(len(model.relative_path) for model in MODELS.values())
    for model in MODELS.values():
        size = f"{_mib(model.size)} MiB" if model.size else "size unknown"
        check = "sha256 pinned" if model.sha256 else "no published sha256"
        lines.append(f"{model.name:{name_width}} {model.relative_path:{path_width}} {size:>12}  {check}")
    lines.extend(f"group {group}: {' '.join(members)}" for group, members in GROUPS.items() if group != "all")
    return lines


def main(argv: list[str] | None = None, prog: str = "python -m frameloom.download") -> int:
    """``prog``: how the user called it (``frameloom download-models`` through the CLI)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download model weights into models_dir, resumable and sha256-verified.")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help=f"model or group names ({', '.join(GROUPS)}); --list shows them")
    parser.add_argument("--models-dir", default="models", help="weights root (config.yaml models_dir; default: models)")
    parser.add_argument("--base-url", help="fetch from this mirror, laid out like models_dir, instead")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="also download models that have no published sha256")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list the known models and groups, then exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(_registry_listing()))
        return 0
    if not args.models:
        parser.error("--models is required (or --list)")
    try:
        outcomes = download(args.models, args.models_dir, args.base_url, progress=not args.no_progress,
                            allow_unverified=args.allow_unverified)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        # A wrong request is a usage error (2, as the frameloom command's); a failed transfer is 1.
        return 2 if isinstance(error, DownloadRequestError) else 1
    print("\n".join(_describe(outcome) for outcome in outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
