# Per frame: analysis JSON, then the decision. Both are cheap and run in-process
# (the default profile sets force-use-threads), so no interpreter starts per frame.


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


rule decide:
    input:
        layout.analysis(OUT),
    output:
        layout.decision(OUT),
    params:
        decision=RUN.decision,
        enabled=RUN.enabled_strategies,
    log:
        "logs/decide/{frame}.log",
    run:
        stages.decide(input[0], output[0], params.decision, params.enabled, log[0])


# The strategy of every frame, as one table; the merge reads it to know which
# outputs to ask for. Strategy rules do not depend on it, so a decision change
# reruns only the frames it changes.
checkpoint plan:
    input:
        expand(layout.decision(OUT), frame=FRAME_IDS),
    output:
        f"{OUT}/plan.tsv",
    log:
        "logs/plan.log",
    run:
        stages.plan(input, output[0], log[0])
