# Dataset curation between the strategy outputs and the merge (frameloom.dataset).
# Per frame (alpha matting, backdrop, CLAHE, quality measures, a hash) it runs
# in the strategy's own job (rules/strategies.smk). Here: one job over the
# whole set: quality rejects, dedup, identity clusters and 3D-safe
# augmentation. Nothing is deleted: the merge links rejects under rejected/.


rule select_dataset:
    input:
        curated_frames,
    output:
        selection=f"{OUT}/curation/selection.json",
        augmented=directory(f"{OUT}/curation/augmented"),
    params:
        cfg=RUN.run["curation"],
        references=RUN.references(),
    log:
        "logs/select_dataset.log",
    run:
        stages.select_dataset(list(input), params.cfg, params.references, output.selection, output.augmented, log[0])
