# Per frame: the analysis JSON, run in-process (the default profile sets
# force-use-threads), so no interpreter starts per frame. Then one job decides
# every frame: a decision is microseconds, a Snakemake job is not.


# With its weights present, the character finder runs first: one batched shell
# job per `character_finder.frames_per_job` frames, the model loaded once per job;
# a frame's analysis reads its batch's folder (frameloom.detect_step).
if FINDER["present"]:

    rule find_characters:
        input:
            frames=finder_batch_frames,
            params=layout.job_parameters(OUT, "finder"),
        output:
            directory(layout.finder_batch(OUT)),
        log:
            f"{LOGS}/find_characters/{{batch}}.log",
        benchmark:
            f"{LOGS}/benchmarks/find_characters/{{batch}}.tsv"
        conda:
            f"../envs/{MODEL_REGISTRY['grounding_dino'].env}.yaml"
        threads: MODEL_THREADS
        resources:
            gpu=int(RUN.uses_gpu),
            mem_mb=by_attempt(JOB_MEMORY_MB["finder"]),
            runtime=by_attempt(30),
        params:
            python=MODEL_PYTHON,
            scripts=SCRIPTS_DIR,
            model=FINDER["path"],
            prompts=" ".join(shlex.quote(p) for p in FINDER["settings"]["prompts"]),
            settings=FINDER["settings"],
            fingerprint=FINDER["fingerprint"],
            device=RUN.run["device"],
            cache=CACHE_DIR,
        shell:
            "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.detect_step"
            " --frames {input.params:q} --out-dir {output:q} --model-dir {params.model:q}"
            " --prompts {params.prompts} --device {params.device}"
            " --box-threshold {params.settings[box_threshold]}"
            " --text-threshold {params.settings[text_threshold]}"
            " --batch-size {params.settings[batch_size]} --cache-dir {params.cache:q}"
            " --model-fingerprint {params.fingerprint}"
            " --threads {threads} --log {log:q}"


rule analyze:
    input:
        unpack(finder_detections),
        frame=frame_path,
    output:
        layout.analysis(OUT),
    log:
        f"{LOGS}/analyze/{{frame}}.log",
    params:
        source=frame_source,
        # Bumped when the metrics change: reruns every analysis.
        version=ANALYSIS_VERSION,
        models_dir=str(RUN.resolve(RUN.run["models_dir"])),
        # Which weights exist is part of the params: adding them reruns the analysis.
        face_weights=RUN.face_weights(),
    run:
        stages.analyze(
            input.frame,
            wildcards.frame,
            params.source,
            output[0],
            params.models_dir,
            params.face_weights,
            log[0],
            input.get("detections"),
        )


# Every frame's decision file, and the plan (its strategy per frame) that the
# later rules read to know which outputs to ask for. Strategy rules do not
# depend on it, so a threshold change reruns only the frames whose strategy changes.
# The decisions folder is updated in place (update()): only changed files are rewritten.
checkpoint decide:
    input:
        all_analyses,
    output:
        plan=f"{OUT}/plan.tsv",
        decisions=update(directory(layout.decisions_dir(OUT))),
    log:
        f"{LOGS}/decide.log",
    params:
        decision=RUN.decision,
        enabled=RUN.enabled_strategies,
        # The overrides file's content: saving an override reruns this job only.
        overrides=RUN.overrides,
    run:
        stages.decide(
            list(input), output.plan, output.decisions, params.decision, params.enabled, params.overrides, log[0]
        )


# `snakemake tune`: thresholds that would hit strategy_targets, proposed in a
# new file (never the user's); not part of the default target.
rule tune:
    input:
        all_analyses,
    output:
        f"{OUT}/tuning/decision_thresholds.yaml",
    log:
        f"{LOGS}/tune.log",
    params:
        decision=RUN.decision,
        enabled=RUN.enabled_strategies,
        source=str(RUN.resolve(RUN.run["decision_thresholds"])),
    run:
        stages.tune(list(input), output[0], params.decision, params.enabled, params.source, log[0])
