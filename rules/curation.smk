# Dataset curation between the strategy outputs and the merge (frameloom.dataset).
# Per frame (alpha matting, backdrop, CLAHE, quality measures, a hash) it runs
# in the strategy's own job (rules/strategies.smk). Here: one job over the
# whole set: quality rejects, dedup, identity clusters and 3D-safe
# augmentation. Nothing is deleted: the merge links rejects under rejected/.


# With DINOv2's weights present, one job embeds every cut-out (and the reference
# images) first; the identity clusters then compare embeddings (frameloom.embed_step).
if EMBEDDER["present"]:

    rule embed_cut_outs:
        input:
            curated=curated_frames,
            plan=rules.decide.output.plan,
        output:
            f"{OUT}/curation/embeddings.json",
        log:
            f"{LOGS}/embed_cut_outs.log",
        benchmark:
            f"{LOGS}/benchmarks/embed_cut_outs.tsv"
        conda:
            f"../envs/{MODEL_REGISTRY['dinov2'].env}.yaml"
        threads: MODEL_THREADS
        resources:
            gpu=int(RUN.uses_gpu),
            mem_mb=by_attempt(JOB_MEMORY_MB["embedding"]),
            runtime=by_attempt(30),
        params:
            python=MODEL_PYTHON,
            scripts=SCRIPTS_DIR,
            out=OUT,
            model=EMBEDDER["path"],
            references=" ".join(shlex.quote(p) for p in RUN.references()["files"]),
            reference_digests=RUN.references()["files"],
            settings=EMBEDDER["settings"],
            fingerprint=EMBEDDER["fingerprint"],
            device=RUN.run["device"],
        shell:
            "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.embed_step"
            " --plan {input.plan:q} --out-dir {params.out:q} --output {output:q} --model-dir {params.model:q}"
            " --references {params.references} --device {params.device}"
            " --batch-size {params.settings[batch_size]} --threads {threads} --log {log:q}"


rule select_dataset:
    input:
        unpack(identity_embeddings),
        curated=curated_frames,
    output:
        selection=f"{OUT}/curation/selection.json",
        augmented=directory(f"{OUT}/curation/augmented"),
    log:
        f"{LOGS}/select_dataset.log",
    params:
        cfg=RUN.run["curation"],
        references=RUN.references(),
    run:
        stages.select_dataset(
            list(input.curated),
            params.cfg,
            params.references,
            output.selection,
            output.augmented,
            log[0],
            input.get("embeddings"),
        )
