# One rule per strategy; each writes the seed's output tree plus a meta file.
# With the classical backends of this release every strategy is a `run:` rule
# executed in-process (no interpreter start per frame); model backends will
# run as batched shell steps in their own conda envs, with `benchmark:`.
# In-process jobs carry no `benchmark:`: it would sample the whole Snakemake
# process (~50 ms a sample); each job log records the step's own wall time.


rule keep_full:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("keep_full"),
    params:
        settings=strategy_params("keep_full"),
    log:
        "logs/keep_full/{frame}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings, log[0])


rule create_occlusion:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("create_occlusion"),
    params:
        settings=strategy_params("create_occlusion"),
    log:
        "logs/create_occlusion/{frame}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings, log[0])


rule segment:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("segment"),
    params:
        settings=strategy_params("segment"),
    log:
        "logs/segment/{frame}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings, log[0])


rule enhance_segment:
    input:
        frame=frame_path,
        analysis=layout.analysis(OUT),
    output:
        **strategy_outputs("enhance_segment"),
    params:
        settings=strategy_params("enhance_segment"),
    log:
        "logs/enhance_segment/{frame}.log",
    run:
        stages.run_strategy(rule, input.frame, input.analysis, dict(output.items()), params.settings, log[0])
