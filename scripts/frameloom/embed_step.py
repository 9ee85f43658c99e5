"""The identity-embedding step: one job embeds every character cut-out of the run.

DINOv2 (frameloom.embedding) is loaded once; the cut-outs are those the
curated records of the planned frames list (``layout.curated_dirs``), plus
the character's reference images. The result, one JSON file, is what the
curation's identity clusters read (frameloom.dataset): embeddings keyed by
curated image, and by reference file. An image that cannot be read is listed
under ``errors`` and the others go on; a model failure fails the job.

    python -m frameloom.embed_step --plan results/plan.tsv --out-dir results --output E.json \\
        --model-dir models/identity/dinov2-small [--references ref1.png ...] --log L
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .devices import cpu_because
from .embedding import EMBEDDER, ImageEmbedder, embedding_input
from .imageio import FrameDecodeError, read_image, read_json, write_json
from .joblog import job_log

DECIMALS = 5  # of each embedding component in the JSON


def cut_out_ids(out_dir: str, plan: dict[str, str]) -> list[str]:
    """The curated cut-outs of the planned frames, sorted."""
    from . import layout
    from .dataset import CURATED_RECORD, CUT_OUT_ROLES

    ids = []
    for folder in layout.curated_dirs(out_dir, plan):
        record = Path(folder, CURATED_RECORD)
        if record.is_file():
            ids += [entry["curated"] for entry in read_json(record)["images"] if entry["role"] in CUT_OUT_ROLES]
    return sorted(ids)


def embed_images(paths: list[str], embedder) -> tuple[dict[str, list[float]], dict[str, str]]:
    """({path: embedding}, {path: error}) for images read with their alpha, read and embedded
    one ``embedder.batch_size`` at a time (a job never holds every cut-out)."""
    embedded, errors = {}, {}
    for start in range(0, len(paths), embedder.batch_size):
        images = {}
        for path in paths[start:start + embedder.batch_size]:
            try:
                images[path] = embedding_input(read_image(path, keep_alpha=True))
            except (FrameDecodeError, OSError, ValueError) as error:
                errors[path] = f"{type(error).__name__}: {(str(error).strip().splitlines() or ['unreadable'])[0]}"
        if images:
            for path, vector in zip(images, embedder.embed(list(images.values())), strict=True):
                embedded[path] = [round(float(v), DECIMALS) for v in vector]
    return embedded, errors


def run_embeddings(plan_path: str, out_dir: str, output: str, model_dir: str, references: list[str], log_path: str,
                   device: str = "auto", batch_size: int = 16, embedder=None) -> dict:
    """Embed the run's cut-outs and the references into ``output``; ``embedder`` (tests) replaces
    the one built from ``model_dir``, which is loaded once."""
    from .plan import read_plan

    with job_log(log_path, "embed cut-outs", live=True) as lines:
        if embedder is None:
            embedder = ImageEmbedder(model_dir, device, batch_size)
        lines.append(f"loaded {embedder.model_name} from {model_dir} on {embedder.device} ({embedder.dtype})")
        if (why := cpu_because(device, embedder.device)) is not None:
            lines.append(f"the GPU is not usable, so the CPU: {why}")
        started = time.perf_counter()
        ids = cut_out_ids(out_dir, read_plan(plan_path))
        images, errors = embed_images(ids, embedder)
        reference_vectors, reference_errors = embed_images(list(references), embedder)
        record = {"embedder": EMBEDDER, "model": embedder.model_name, "device": embedder.device,
                  "dtype": embedder.dtype, "images": images, "references": reference_vectors,
                  "errors": {**errors, **reference_errors}}
        write_json(output, record)
        lines.append(f"{len(images)} cut-outs and {len(reference_vectors)} references embedded in "
                     f"{time.perf_counter() - started:.1f} s; {len(record['errors'])} unreadable")
        return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m frameloom.embed_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="the decide step's plan.tsv")
    parser.add_argument("--out-dir", required=True, help="the run's output folder (its curated/ is read)")
    parser.add_argument("--output", required=True, help="the embeddings JSON to write")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--references", nargs="*", default=[])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_embeddings(args.plan, args.out_dir, args.output, args.model_dir, args.references, args.log, args.device,
                   args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
