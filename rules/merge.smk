# Aggregate: the kohya training folder, processing_report.json and the HTML report.


rule merge:
    input:
        plan=rules.decide.output.plan,
        metas=lambda wildcards: list(planned_metas(wildcards).values()),
        decisions=rules.decide.output.decisions,
        captions=caption_manifests,
        selection=f"{OUT}/curation/selection.json",
    output:
        training=directory(layout.training_dir(OUT)),
        rejected=directory(f"{OUT}/rejected"),
        kohya=f"{OUT}/exports/kohya_dataset.toml",
        onetrainer=f"{OUT}/exports/onetrainer_concepts.json",
        report=f"{OUT}/processing_report.json",
    params:
        settings={
            "decision": RUN.decision,
            "merge": RUN.run["merge"],
            "trigger_word": RUN.run["character"]["trigger_word"],
            "captioner": RUN.caption_status(),
        },
    log:
        "logs/merge.log",
    run:
        stages.merge(OUT, planned_metas(wildcards), input, output, params.settings, log[0])


rule html_report:
    input:
        f"{OUT}/processing_report.json",
    output:
        report(f"{OUT}/report.html", category="frameloom"),
    log:
        "logs/html_report.log",
    run:
        stages.html_report(input[0], output[0], log[0])
