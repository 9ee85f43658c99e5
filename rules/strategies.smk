# One rule per strategy (registry.STRATEGY_REGISTRY); each writes the seed's output
# tree plus a meta file, then curates those images (frameloom.dataset.curate_frame)
# into curated/{strategy}/{frame}: one job per frame after the decisions, not two.
# Strategies without model steps (keep_full, create_occlusion) are `run:` rules
# executed in-process (no interpreter start per frame). In-process jobs carry no `benchmark:`: it would
# sample the whole Snakemake process (~50 ms a sample); each job log records
# the step's own wall time.


for strategy in (name for name, spec in STRATEGY_REGISTRY.items() if not spec.uses_models):

    rule:
        name:
            strategy
        input:
            frame=frame_path,
            analysis=layout.analysis(OUT),
        output:
            **strategy_outputs(strategy),
            curated=directory(layout.curated(OUT, strategy)),
        log:
            f"{LOGS}/{strategy}/{{frame}}.log",
        params:
            settings=strategy_params(strategy),
            curation=CURATION,
        run:
            stages.run_strategy(
                rule, input.frame, input.analysis, dict(output.items()), params.settings, params.curation, log[0]
            )


# Model steps (frameloom.model_step, registry.MODEL_STEPS): one rule and one conda env per
# model (upscale: Real-ESRGAN, restore_faces: CodeFormer/GFPGAN, masks: SAM2, inpaint:
# LaMa), each a shell job over about `processing.frames_per_job` frames with its model
# loaded once. Each frame's result is a content-addressed cache entry, so a changed frame
# or a changed model setting recomputes that step (and the steps after it) for the frames
# it touches, nothing else. A frame of segment goes through masks then inpaint; of
# enhance_segment through upscale, restore_faces, then masks (RunConfig.frame_steps).
for step, (_, _, requirement) in MODEL_STEPS.items():

    rule:
        name:
            step
        input:
            unpack(step_inputs(step)),
            params=layout.job_parameters(OUT, step),
        output:
            layout.step_manifest(OUT, step),
        log:
            f"{LOGS}/{step}/{{batch}}.log",
        benchmark:
            f"{LOGS}/benchmarks/{step}/{{batch}}.tsv"
        conda:
            f"../envs/{requirement_env(requirement)}.yaml"
        threads: MODEL_THREADS
        resources:
            gpu=int(RUN.uses_gpu),
            mem_mb=by_attempt(JOB_MEMORY_MB[step]),
            runtime=by_attempt(30),
            # Not limits: the step fails a try on which some frame failed unless it is the last
            # (so Snakemake retries), and on the last reports that frame instead. Resources,
            # unlike params, are no rerun trigger.
            attempt=lambda wildcards, attempt: attempt,
            attempts=attempts,
        params:
            # The shell command is built when the job runs, after this loop: it reads the step from here.
            step=step,
            python=MODEL_PYTHON,
            scripts=SCRIPTS_DIR,
            cache=CACHE_DIR,
        shell:
            "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.model_step {params.step}"
            " --params {input.params:q} --cache-dir {params.cache:q} --manifest {output:q}"
            " --threads {threads} --log {log:q} --attempt {resources.attempt} --attempts {resources.attempts}"


# Per frame: the strategy's outputs assembled from its model steps' cache entries, then curated.


for strategy in (name for name, spec in STRATEGY_REGISTRY.items() if spec.uses_models):

    rule:
        name:
            strategy
        input:
            unpack(frame_step_manifests(strategy)),
            frame=frame_path,
            analysis=layout.analysis(OUT),
        output:
            **strategy_outputs(strategy),
            curated=directory(layout.curated(OUT, strategy)),
        log:
            f"{LOGS}/{strategy}/{{frame}}.log",
        params:
            settings=strategy_params(strategy),
            curation=CURATION,
            cache=CACHE_DIR,
        run:
            stages.export_model_frame(rule, wildcards.frame, input, output, params, log[0])
