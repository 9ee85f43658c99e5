"""One function per workflow stage, each writing its own log (frameloom.joblog)."""

from __future__ import annotations

from pathlib import Path

from .imageio import read_json, update_json_folder, write_json, write_text
from .joblog import job_log


def write_parameters(output: str, content: dict, log: str) -> None:
    """A batched model job's parameters file (rule job_parameters)."""
    with job_log(log, "job parameters") as lines:
        write_json(output, content)
        members = content.get("members", content)
        lines.append(f"{output}: {len(members)} frames")


def render_demo(frame_paths: list[str], truth_dir: str, n: int, seed: int, width: int, height: int, log: str) -> None:
    from .demo import write_demo_set

    with job_log(log, "demo") as lines:
        written = write_demo_set(Path(frame_paths[0]).parent, n, seed=seed, width=width, height=height,
                                 truth_dir=truth_dir)
        lines.append(f"{len(written)} demo frames in {Path(frame_paths[0]).parent}")


def analyze(frame_path: str, frame_id: str, source: str, output: str, models_dir: str, face_weights: dict,
            log: str, detections_dir: str | None = None) -> None:
    """One frame's analysis; ``detections_dir``: the character finder's batch folder, when it ran."""
    from .analysis import analyze_file

    with job_log(log, "analyze") as lines:
        detections = read_json(str(Path(detections_dir, f"{frame_id}.json"))) if detections_dir else None
        record = analyze_file(frame_path, frame_id, source, models_dir=models_dir, detections=detections,
                              **face_weights)
        write_json(output, record)
        lines.append(f"{frame_id}: ok={record['ok']} finder={record.get('finder')} error={record.get('error')}")


def decide(analysis_paths: list[str], plan_path: str, decisions_dir: str, decision_cfg: dict, enabled: list[str],
           overrides: dict, log: str) -> None:
    """Every frame's decision file and the plan, in one pass: deciding is microseconds a frame,
    and one job instead of one per frame keeps a threshold change (or a 10,000-frame DAG) cheap,
    and lets the planner (frameloom.planner) see the whole set. ``overrides`` ({frame: override},
    frameloom.overrides) replace the automatic decisions."""
    from collections import Counter

    from .decision import decide_all
    from .plan import plan_status, write_plan
    from .planner import plan_constraints

    with job_log(log, "decide") as lines:
        analyses = []
        for path in analysis_paths:
            try:
                analyses.append(read_json(path))
            except (OSError, ValueError) as error:
                # A damaged analysis fails its own frame, not the decisions of the others.
                analyses.append({"frame": Path(path).stem, "ok": False, "error": f"AnalysisReadError: {error}"})
        decisions = decide_all(analyses, decision_cfg, enabled, overrides)
        for frame, decision in decisions.items():
            lines.append(f"{frame}: {plan_status(decision)} ({decision['reasoning']})")
        # Only the decisions that changed are rewritten: the others keep their bytes and mtime.
        written, removed = update_json_folder(decisions_dir, decisions)
        lines.append(f"decision files: {written} written, {removed} removed, "
                     f"{len(decisions) - written} unchanged")
        unknown = sorted(set(overrides) - set(decisions))
        if unknown:
            lines.append(f"overrides for frames not in the input (ignored): {', '.join(unknown)}")
        planned = write_plan(decisions, plan_path)
        lines.append(f"{len(planned)} frames planned: {dict(sorted(Counter(planned.values()).items()))}")
        for name, row in plan_constraints(decisions, decision_cfg, enabled).items():
            lines.append(f"{name}: {row['frames']} frames, {row['achieved']:.0%} against a {row['target']:.0%} "
                         f"target ({row['binding']})")


def temporal_expansion(curated: list[str], frames: dict[str, str], frames_root: str, settings: dict, output: str,
                       log: str) -> None:
    """The frames to process: the curated ones and their neighbours (frameloom.temporal)."""
    from .temporal import expand

    with job_log(log, "temporal_expansion") as lines:
        result = expand(curated, frames, Path(frames_root), settings["window_size"], settings["phash_threshold"],
                        settings["ssim_threshold"])
        write_json(output, result)
        lines.append(f"{result['curated']} curated, {result['matched']} matched, {result['added']} neighbours added, "
                     f"{len(result['dropped'])} near-duplicates dropped: {len(result['selected'])} frames")
        if result["unmatched"]:
            lines.append(f"not found in the frames folder: {', '.join(result['unmatched'])}")


def tune(analysis_paths: list[str], output: str, decision_cfg: dict, enabled: list[str], source: str,
         log: str) -> None:
    """A new decision-thresholds file whose decisions hit strategy_targets (frameloom.tune)."""
    from .tune import tune as tune_thresholds
    from .tune import tuned_file

    with job_log(log, "tune") as lines:
        if Path(output).resolve() == Path(source).resolve():
            raise ValueError(f"tune would overwrite {source}: it only ever writes a new file")
        analyses = []
        for path in analysis_paths:
            try:
                analyses.append(read_json(path))
            except (OSError, ValueError) as error:
                lines.append(f"skipped {path}: {error}")
        result = tune_thresholds(analyses, decision_cfg, enabled)
        write_text(output, tuned_file(decision_cfg, result, source))
        lines.append(f"{result['frames']} frames ({result['search_frames']} searched), "
                     f"{result['sweeps']} sweeps: distance to the targets "
                     f"{result['start']['distance']} -> {result['distance']}")
        lines.append(f"thresholds {result['thresholds']}; mix {result['mix']} (was {result['start']['mix']})")


def _curate(meta_path: str, analysis_path: str, frame_path: str, out_dir: str, curation: dict,
            lines: list[str]) -> None:
    from .dataset import curate_frame

    record = curate_frame(meta_path, analysis_path, frame_path, out_dir, curation["cfg"], curation["good_lighting"])
    for image in record["images"]:
        failed = ", ".join(f["filter"] for f in image["failures"]) or "none"
        lines.append(f"curated {Path(image['curated']).name}: {', '.join(image['steps']) or 'as is'}; failed: {failed}")


def run_strategy(strategy: str, frame_path: str, analysis_path: str, outputs: dict, settings: dict,
                 curation: dict, log: str) -> None:
    """A cheap strategy's outputs, then their curation into ``outputs['curated']``: one job a frame.

    ``curation``: {"cfg": the curation config, "good_lighting": the decision threshold}."""
    from .strategies import execute

    outputs = dict(outputs)
    curated_dir = outputs.pop("curated")
    with job_log(log, strategy) as lines:
        meta = execute(strategy, frame_path, analysis_path, outputs, settings)
        lines.append(f"{settings['frame']}: {len(meta['outputs'])} outputs, error={meta['error']}")
        _curate(outputs["meta"], analysis_path, frame_path, curated_dir, curation, lines)


def export_model_frame(strategy: str, frame: str, inputs, outputs, params, log: str) -> None:
    """A model strategy's outputs assembled from the frame's model-step cache entries, then curated,
    like ``run_strategy``; a frame a step failed for gets placeholders and that error. ``inputs``
    (the rule's named inputs, or a dict): frame, analysis and, under each model step's name, its
    batch's manifest; ``outputs``: the rule's named outputs; ``params``: .cache (the cache
    folder), .settings, .curation."""
    from .model_step import write_placeholders
    from .registry import MODEL_STEPS
    from .stepcache import frame_entries
    from .strategies import export

    inputs = dict(inputs.items())
    frame_path, analysis_path = inputs["frame"], inputs["analysis"]
    manifests = {step: path for step, path in inputs.items() if step in MODEL_STEPS}
    outputs = dict(outputs.items())
    curated_dir = outputs.pop("curated")
    with job_log(log, strategy) as lines:
        entries, error = frame_entries(frame, manifests, params.cache)
        if error:
            write_placeholders(frame, strategy, frame_path, outputs, error)
            lines.append(f"{frame}: a model step failed: {error}")
        else:
            meta = export(strategy, frame_path, analysis_path, outputs, params.settings, entries)
            lines.append(f"{frame}: {len(meta['outputs'])} outputs from {', '.join(meta['cache'])}, "
                         f"error={meta['error']}")
        _curate(outputs["meta"], analysis_path, frame_path, curated_dir, params.curation, lines)


def select_dataset(curated_dirs: list[str], cfg: dict, references: dict, selection_path: str,
                   augment_dir: str, log: str, embeddings: str | None = None) -> None:
    """``embeddings``: the identity-embedding step's file (frameloom.embed_step), when it ran."""
    from .dataset import CURATED_RECORD
    from .dataset import select_dataset as select

    with job_log(log, "select_dataset") as lines:
        selection = select([str(Path(d, CURATED_RECORD)) for d in curated_dirs], cfg, references, augment_dir,
                           read_json(embeddings) if embeddings else None)
        write_json(selection_path, selection)
        lines.append(f"counts: {selection['counts']}")
        lines.append(f"identity: {selection['identity']['reason']}")


def merge(out_dir: str, metas: dict[str, str], inputs, outputs, settings: dict, frame_files: dict[str, str],
          log: str) -> None:
    """The training folder, the rejected links, the trainer configs and the report.

    ``inputs``: .plan, .captions (caption manifests), .detections (the finder's batch folders,
    when it ran), .selection; ``outputs``:
    .training, .rejected, .kohya, .onetrainer, .report (the rule's named files);
    ``settings``: decision, enabled (strategies), merge (the config's merge section), trigger_word, captioner;
    ``frame_files``: {frame id: its image file}."""
    import json

    from . import layout
    from .exports import kohya_dataset_toml, onetrainer_concepts, plan_concepts
    from .merge import build_report, read_caption_manifests, summary_warnings
    from .plan import read_plan
    from .pruning import prune_cache, prune_stale_outputs
    from .stepcache import CAPTIONS, entry_name
    from .training import build_rejected_folder, build_training_folder

    with job_log(log, "merge") as lines:
        planned = read_plan(inputs.plan)
        removed = prune_stale_outputs(out_dir, planned)
        lines.append(f"pruned {len(removed)} stale outputs of earlier decisions")
        vlm_captions = read_caption_manifests(list(inputs.captions))
        meta_records = {frame: read_json(path) for frame, path in metas.items()}
        used = {name for meta in meta_records.values() for name in meta.get("cache", [])}
        used |= {entry_name(CAPTIONS, record["key"]) for record in vlm_captions.values()}
        # A failed frame's detection file names no entry.
        used |= {read_json(path).get("cache") for folder in inputs.detections for path in Path(folder).glob("*.json")}
        dropped = prune_cache(layout.cache_dir(out_dir), used)
        lines.append(f"dropped {len(dropped)} unused cache entries (model steps, captions, finder)")
        selection = read_json(inputs.selection)
        merge_cfg = settings["merge"]
        concepts = plan_concepts(selection["kept"] + selection["augmented"], settings["trigger_word"],
                                 merge_cfg["repeats"], settings["decision"]["strategy_targets"],
                                 merge_cfg["balance_repeats"], merge_cfg["max_repeats"])
        count = build_training_folder(selection, outputs.training, concepts, vlm_captions)
        lines.append(f"{count} training images in {outputs.training}: " + ", ".join(
            f"{name} ({c['images']} images)" for name, c in concepts.items()))
        write_text(outputs.kohya, kohya_dataset_toml(outputs.training, concepts, merge_cfg["resolution"]))
        write_text(outputs.onetrainer, json.dumps(onetrainer_concepts(outputs.training, concepts), indent=2) + "\n")
        rejected = build_rejected_folder(selection, outputs.rejected)
        lines.append(f"{rejected} rejected images linked in {outputs.rejected}")
        analyses = {frame: layout.analysis(out_dir).format(frame=frame) for frame in planned}
        decisions = {frame: layout.decision(out_dir).format(frame=frame) for frame in planned}
        report = build_report(planned, analyses, decisions, meta_records, settings["decision"], selection, vlm_captions,
                              settings["captioner"], frame_files, settings["enabled"])
        # Per concept folder: its repeats, images, target share and achieved effective share.
        report["summary"]["repeats"] = concepts
        report["summary"]["warnings"] = summary_warnings(report, selection)
        write_json(outputs.report, report)
        lines.append(f"report: {report['summary']}")


def html_report(report_path: str, outputs, out_dir: str, input_root: str, logs_dir: str, contact_sheet_frames: int,
                enabled: list[str], log: str) -> None:
    """report.html and review.html (``outputs``: .report, .review) from processing_report.json."""
    from .report_html import render_report
    from .review import render_review_page

    with job_log(log, "html_report") as lines:
        report = read_json(report_path)
        write_text(outputs.report, render_report(report, Path(outputs.report).parent, Path(input_root),
                                                 Path(logs_dir), contact_sheet_frames))
        write_text(outputs.review, render_review_page(report, Path(outputs.review), Path(out_dir),
                                                      Path(input_root), enabled))
        lines.append(f"wrote {outputs.report} and {outputs.review}")
