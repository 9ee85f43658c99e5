# A batched model job's frames and settings, as a file the job reads: its logged command
# stays one readable line. A change of members or settings rewrites the file (params are a
# rerun trigger) and so reruns that job only. Written where the workflow runs, never
# submitted to a cluster: it is a few lines of JSON from the plan the head node holds.
localrules:
    job_parameters,


rule job_parameters:
    input:
        job_parameters_inputs,
    output:
        layout.job_parameters(OUT, "{step}"),
    log:
        f"{LOGS}/params/{{step}}/{{batch}}.log",
    params:
        content=job_parameters,
    run:
        stages.write_parameters(output[0], params.content, log[0])
