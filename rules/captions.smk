# VLM captions: batches of `captioning.frames_per_job` frames per shell job, the
# model loaded once per job, answers cached by content (see
# frameloom.caption_step). The merge writes the captions into the training folder.
# Without the VLM's weights there are no such jobs: the template captions stand.


rule caption_batch:
    input:
        metas=caption_batch_metas,
        params=layout.job_parameters(OUT, "captions"),
    output:
        f"{OUT}/captions/batches/{{batch}}.json",
    log:
        f"{LOGS}/captions/{{batch}}.log",
    benchmark:
        f"{LOGS}/benchmarks/captions/{{batch}}.tsv"
    conda:
        f"../envs/{MODEL_REGISTRY['qwen2_vl'].env}.yaml"
    threads: 4
    resources:
        gpu=int(RUN.run["device"] != "cpu"),
        mem_mb=by_attempt(JOB_MEMORY_MB["captions"]),
        runtime=by_attempt(60),
    params:
        python=MODEL_PYTHON,
        scripts=SCRIPTS_DIR,
        cache=CACHE_DIR,
    shell:
        "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.caption_step"
        " --params {input.params:q} --cache-dir {params.cache:q}"
        " --manifest {output:q} --threads {threads} --log {log:q}"
