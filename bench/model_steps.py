"""Model steps: load time, per-frame time, precision and peak memory of every model adapter, on one device.

Each adapter is built and run exactly as the model jobs do (one load per job,
then frame after frame); "s / frame in a job" spreads the load over the
default job size (``processing.frames_per_job``: auto), and the last line adds
the model time a frame costs in the default strategy mix into frames per
hour for the whole pipeline on this device. Grounding DINO and DINOv2 run
their real architectures (grounding-dino-tiny, dinov2-small) with random
weights, so their times are the real networks'. Real-ESRGAN uses the real weights from
../shared/models (or FRAMELOOM_MODELS_DIR) when present. SAM2, LaMa,
CodeFormer and Qwen2-VL weights cannot be had here, so they run as the test
suite's checkpoints in the real on-disk formats, loaded by the real loaders:
SAM2 and CodeFormer are their full architectures with random weights (their
times are the real networks'), Qwen2-VL is a tiny random model (its time is
the processor's and the generate loop's, not a 2B model's) and LaMa is a
mean-fill TorchScript (only the adapter's own cost).

    .venv/bin/python bench/model_steps.py [--device cpu|cuda] [--frames 2] [--size 320 180]

bench/gpu_check.sh runs it on CUDA after printing the driver and torch's view of the GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from frameloom.demo import FrameSpec, render_frame  # noqa: E402

MODELS = Path(os.environ.get("FRAMELOOM_MODELS_DIR", REPO.parent / "shared" / "models"))


def timed(function):
    started = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def peak_mb(device: str) -> str:
    """Peak GPU memory since the last reset (CUDA only: on the CPU one process's peak covers all models)."""
    return f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if device.startswith("cuda") else "-"


def frames_per_job(device: str) -> int:
    """The default job size (processing.frames_per_job: auto) on this device."""
    from frameloom.config import CPU_FRAMES_PER_JOB, GPU_FRAMES_PER_JOB

    return GPU_FRAMES_PER_JOB if device.startswith("cuda") else CPU_FRAMES_PER_JOB


# Model seconds a frame costs in each strategy (the models its step runs), and the share of
# frames the default strategy_targets give it: the pipeline's model time per frame.
# (The bench's SAM2 is hiera_tiny; the default config's hiera_large costs more.)
PIPELINE = {"segment": (0.40, ("sam2_hiera_tiny", "lama")),
            "enhance_segment": (0.15, ("RealESRGAN_x4plus_anime_6B", "codeformer", "sam2_hiera_tiny", "lama"))}
EVERY_FRAME = ("grounding_dino", "qwen2_vl")  # the finder and the captions run for every frame


def adapters(scratch: Path, device: str):
    """(name, what its weights are, loader, per-frame call(loaded, image, truth)) for each model."""
    import model_builders
    import transformers

    from frameloom.detector import CharacterDetector
    from frameloom.embedding import ImageEmbedder
    from frameloom.esrgan_backend import RealESRGANUpscaler
    from frameloom.face_restore import CodeFormerRestorer
    from frameloom.lama_backend import LamaInpainter
    from frameloom.sam2_backend import SAM2Segmenter
    from frameloom.vlm_backend import QwenVLCaptioner

    sam2 = model_builders.save_random_sam2(scratch / "sam2.pt")
    torch.manual_seed(0)
    transformers.GroundingDinoForObjectDetection(transformers.GroundingDinoConfig()).save_pretrained(scratch / "gdino")
    transformers.GroundingDinoImageProcessor().save_pretrained(scratch / "gdino")
    transformers.BertTokenizerFast(vocab_file=_vocab(scratch)).save_pretrained(scratch / "gdino")
    transformers.Dinov2Model(transformers.Dinov2Config()).save_pretrained(scratch / "dinov2")
    transformers.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                   do_convert_rgb=True).save_pretrained(scratch / "dinov2")
    yield ("grounding_dino (tiny architecture)", "random weights, real architecture",
           lambda: CharacterDetector(scratch / "gdino", device=device, batch_size=1),
           lambda model, image, truth: model.detect([image], ["person", "animal"]))
    yield ("dinov2 (small architecture)", "random weights, real architecture",
           lambda: ImageEmbedder(scratch / "dinov2", device=device, batch_size=16),
           lambda model, image, truth: model.embed([image]))
    lama = model_builders.save_mean_fill_lama(scratch / "lama.pt")
    qwen = model_builders.save_tiny_qwen2_vl(scratch / "qwen2_vl")
    codeformer = model_builders.save_random_face_restorer(scratch / "codeformer.pth", CodeFormerRestorer)
    yield ("sam2_hiera_tiny, points_per_side 8", "random weights, real architecture",
           lambda: SAM2Segmenter("sam2_hiera_tiny", sam2, device=device, points_per_side=8),
           lambda model, image, truth: model.segment(image, {"faces": [{"box": truth["face_boxes"][0]}]}))
    yield ("lama", "mean-fill TorchScript: adapter cost only",
           lambda: LamaInpainter(lama, device=device),
           lambda model, image, truth: model.inpaint(image, character_mask(image, truth)))
    for name in ("realesr-animevideov3", "RealESRGAN_x4plus_anime_6B"):
        weights = MODELS / "enhancement" / f"{name}.pth"
        if weights.is_file():
            yield (f"{name} x2", "real weights",
                   lambda weights=weights, name=name: RealESRGANUpscaler(name, weights, device=device, outscale=2.0),
                   lambda model, image, truth: model.upscale(image))
    yield ("codeformer, 1 face", "random weights, real architecture",
           lambda: CodeFormerRestorer(codeformer, device=device, max_drift=1.0),
           lambda model, image, truth: model.restore(image, [truth["face_boxes"][0]]))
    yield ("qwen2_vl caption", "tiny random model: processor + generate only",
           lambda: QwenVLCaptioner(str(qwen), device=device, max_new_tokens=32),
           lambda model, image, truth: model.caption([cv2.cvtColor(image, cv2.COLOR_BGR2RGB)], "Describe."))


def _vocab(scratch: Path) -> str:
    """A small WordPiece vocabulary file for the Grounding DINO tokenizer (the text encoder's
    size, not its vocabulary, decides the time)."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "person", "animal", "creature", "cartoon", "character"]
    path = scratch / "vocab.txt"
    path.write_text("\n".join(words + [f"w{i}" for i in range(30522 - len(words))]) + "\n")
    return str(path)


def character_mask(image: np.ndarray, truth: dict) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    x, y, w, h = truth["boxes"][0]
    mask[y:y + h, x:x + w] = 255
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--frames", type=int, default=2, help="frames timed per model, after one warm-up")
    parser.add_argument("--size", type=int, nargs=2, default=[320, 180], metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device on this machine")
    warnings.simplefilter("ignore")  # sam2, basicsr and transformers deprecation notes, one per load
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    width, height = args.size
    frames = [render_frame(FrameSpec(seed=seed, width=width, height=height, shot="close-up"))
              for seed in range(args.frames + 1)]
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"{torch.get_num_threads()} threads")
    job = frames_per_job(args.device)
    print(f"device {args.device} ({device_name}); {width}x{height} frames; median of {args.frames} after a warm-up; "
          f"jobs of {job} frames\n")
    print(f"{'model':38}{'precision':>18}{'load s':>8}{'s / frame':>11}{'frames / s':>11}{'in a job':>10}"
          f"{'peak MB':>9}  weights")
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="frameloom-models-") as tmp:
        for name, weights, load, step in adapters(Path(tmp), args.device):
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            model, load_seconds = timed(load)
            step(model, *frames[0])
            per_frame = statistics.median(timed(lambda: step(model, *frame))[1] for frame in frames[1:])  # noqa: F821
            precision = getattr(model, "precision", None) or getattr(model, "dtype", "float32")
            in_job = (load_seconds + job * per_frame) / job
            seconds[name.split(" ")[0].split(",")[0]] = in_job
            print(f"{name:38}{precision:>18}{load_seconds:8.2f}{per_frame:11.3f}{1 / per_frame:11.2f}{in_job:10.3f}"
                  f"{peak_mb(args.device):>9}  {weights}", flush=True)
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    per_frame = sum(seconds.get(model, 0.0) for model in EVERY_FRAME) + sum(
        share * sum(seconds.get(model, 0.0) for model in models) for share, models in PIPELINE.values())
    print(f"\npipeline model time per frame (default mix, jobs of {job}): {per_frame:.2f} s "
          f"-> {3600 / per_frame:.0f} frames per hour on this device (model steps only; the analysis, "
          "curation and merge run beside them on the CPU)")


if __name__ == "__main__":
    main()
