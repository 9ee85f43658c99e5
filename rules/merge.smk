# Aggregate: the kohya training folder, processing_report.json and the HTML report.


rule merge:
    input:
        plan=rules.decide.output.plan,
        metas=lambda wildcards: list(planned_metas(wildcards).values()),
        decisions=rules.decide.output.decisions,
        captions=caption_manifests,
        detections=finder_batch_folders,
        selection=f"{OUT}/curation/selection.json",
    output:
        training=directory(layout.training_dir(OUT)),
        rejected=directory(f"{OUT}/rejected"),
        kohya=f"{OUT}/exports/kohya_dataset.toml",
        onetrainer=f"{OUT}/exports/onetrainer_concepts.json",
        report=f"{OUT}/processing_report.json",
    log:
        f"{LOGS}/merge.log",
    params:
        settings={
            "decision": RUN.decision,
            "enabled": RUN.enabled_strategies,
            "merge": RUN.run["merge"],
            "trigger_word": RUN.run["character"]["trigger_word"],
            "captioner": RUN.caption_status(),
        },
        frame_files=lambda wildcards: {frame: frame_file(frame) for frame in _plan(*_plan_version())},
    run:
        stages.merge(OUT, planned_metas(wildcards), input, output, params.settings, params.frame_files, log[0])


rule html_report:
    input:
        f"{OUT}/processing_report.json",
    output:
        report=report(f"{OUT}/report.html", category="frameloom"),
        # Served by `python -m frameloom.review` to save overrides; read-only as a file.
        review=f"{OUT}/review.html",
    log:
        f"{LOGS}/html_report.log",
    params:
        input_root=str(INPUT_ROOT),
        contact_sheet_frames=RUN.run["report"]["contact_sheet_frames"],
        enabled=RUN.enabled_strategies,
    run:
        # Stage times come from the job logs under logs/ (read, not tracked as inputs).
        stages.html_report(
            input[0], output, OUT, params.input_root, LOGS, params.contact_sheet_frames, params.enabled, log[0]
        )
