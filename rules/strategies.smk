# One rule per strategy; each writes the seed's output tree plus a meta file,
# then curates those images (frameloom.dataset.curate_frame) into
# curated/{strategy}/{frame}: one job per frame after the decisions, not two.
# keep_full and create_occlusion are `run:` rules executed in-process (no
# interpreter start per frame). In-process jobs carry no `benchmark:`: it would
# sample the whole Snakemake process (~50 ms a sample); each job log records
# the step's own wall time.


rule keep_full:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("keep_full"),
        curated=directory(layout.curated(OUT, "keep_full")),
    params:
        settings=strategy_params("keep_full"),
        curation=CURATION,
    log:
        f"{LOGS}/keep_full/{{frame}}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings,
                            params.curation, log[0])


rule create_occlusion:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("create_occlusion"),
        curated=directory(layout.curated(OUT, "create_occlusion")),
    params:
        settings=strategy_params("create_occlusion"),
        curation=CURATION,
    log:
        f"{LOGS}/create_occlusion/{{frame}}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings,
                            params.curation, log[0])


# Model steps: batches of `processing.frames_per_job` frames per shell job, models
# loaded once per job, results in a content-addressed cache (see
# frameloom.model_step). Then a cheap per-frame export links them into place.
# When one frame of a batch changes, its batch-mates come from the cache: their
# exports relink the same files (same bytes; Snakemake refreshes their mtime).


rule model_batch:
    input:
        unpack(batch_inputs),
        params=f"{OUT}/params/{{strategy}}/{{batch}}.json",
    output:
        f"{OUT}/{{strategy}}/batches/{{batch}}.json",
    params:
        python=MODEL_PYTHON,
        scripts=SCRIPTS_DIR,
        cache=CACHE_DIR,
    log:
        f"{LOGS}/{{strategy}}/batches/{{batch}}.log",
    benchmark:
        f"{LOGS}/benchmarks/{{strategy}}/{{batch}}.tsv"
    threads: MODEL_THREADS
    resources:
        gpu=lambda wildcards: int(RUN.uses_gpu),
        mem_mb=lambda wildcards, attempt: JOB_MEMORY_MB[wildcards.strategy] * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
        # Not limits: the step fails a try on which some frame failed unless it is the last
        # (so Snakemake retries), and on the last reports that frame instead. Resources,
        # unlike params, are no rerun trigger.
        attempt=lambda wildcards, attempt: attempt,
        attempts=attempts,
    conda:
        "../envs/{strategy}.yaml"
    shell:
        "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.model_step {wildcards.strategy}"
        " --params {input.params:q} --cache-dir {params.cache:q}"
        " --manifest {output:q} --threads {threads} --log {log:q}"
        " --attempt {resources.attempt} --attempts {resources.attempts}"


rule segment:
    input:
        manifest=lambda wildcards: batch_manifest("segment", wildcards.frame),
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("segment"),
        curated=directory(layout.curated(OUT, "segment")),
    params:
        curation=CURATION,
    log:
        f"{LOGS}/segment/{{frame}}.log",
    run:
        stages.export_model_frame(wildcards.frame, input.manifest, CACHE_DIR, input.frame, input.analysis,
                                  dict(output.items()), params.curation, log[0])


rule enhance_segment:
    input:
        manifest=lambda wildcards: batch_manifest("enhance_segment", wildcards.frame),
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("enhance_segment"),
        curated=directory(layout.curated(OUT, "enhance_segment")),
    params:
        curation=CURATION,
    log:
        f"{LOGS}/enhance_segment/{{frame}}.log",
    run:
        stages.export_model_frame(wildcards.frame, input.manifest, CACHE_DIR, input.frame, input.analysis,
                                  dict(output.items()), params.curation, log[0])
