# Per frame: the analysis JSON, run in-process (the default profile sets
# force-use-threads), so no interpreter starts per frame. Then one job decides
# every frame: a decision is microseconds, a Snakemake job is not.


rule analyze:
    input:
        frame=frame_path,
    output:
        layout.analysis(OUT),
    params:
        source=frame_source,
        # Bumped when the metrics change: reruns every analysis.
        version=ANALYSIS_VERSION,
        models_dir=str(RUN.resolve(RUN.run["models_dir"])),
        # Which weights exist is part of the params: adding them reruns the analysis.
        face_weights=RUN.face_weights(),
    log:
        "logs/analyze/{frame}.log",
    run:
        stages.analyze(input.frame, wildcards.frame, params.source, output[0], params.models_dir,
                       params.face_weights, log[0])


# Every frame's decision file, and the plan (its strategy per frame) that the
# later rules read to know which outputs to ask for. Strategy rules do not
# depend on it, so a threshold change reruns only the frames whose strategy changes.
checkpoint decide:
    input:
        all_analyses,
    output:
        plan=f"{OUT}/plan.tsv",
        decisions=directory(layout.decisions_dir(OUT)),
    params:
        decision=RUN.decision,
        enabled=RUN.enabled_strategies,
        # The overrides file's content: saving an override reruns this job only.
        overrides=RUN.overrides,
    log:
        "logs/decide.log",
    run:
        stages.decide(list(input), output.plan, output.decisions, params.decision, params.enabled,
                      params.overrides, log[0])


# `snakemake tune`: thresholds that would hit strategy_targets, proposed in a
# new file (never the user's); not part of the default target.
rule tune:
    input:
        all_analyses,
    output:
        f"{OUT}/tuning/decision_thresholds.yaml",
    params:
        decision=RUN.decision,
        enabled=RUN.enabled_strategies,
        source=str(RUN.resolve(RUN.run["decision_thresholds"])),
    log:
        "logs/tune.log",
    run:
        stages.tune(list(input), output[0], params.decision, params.enabled, params.source, log[0])
