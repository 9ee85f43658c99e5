"""Every model file frameloom can download: its URL, where it goes under models_dir, and the
sha256 (or pinned snapshot revision) it is verified against; groups name several files.
frameloom.download fetches them, frameloom.models says what each model is for.
"""

from __future__ import annotations

from dataclasses import dataclass


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
