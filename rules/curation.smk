# Dataset curation between the strategy outputs and the merge (frameloom.dataset):
# per frame, alpha matting, backdrop, CLAHE, quality measures and a hash; then
# one job over the whole set: quality rejects, dedup, identity clusters and
# 3D-safe augmentation. Nothing is deleted: the merge links rejects under rejected/.


rule curate:
    input:
        meta=lambda wildcards: planned_metas(wildcards)[wildcards.frame],
        analysis=layout.analysis(OUT),
        frame=frame_path,
    output:
        directory(f"{OUT}/curated/frames/{{frame}}"),
    params:
        cfg=RUN.run["curation"],
        good_lighting=RUN.decision["thresholds"]["good_lighting"],
    log:
        "logs/curate/{frame}.log",
    run:
        stages.curate(input.meta, input.analysis, input.frame, output[0], params.cfg, params.good_lighting, log[0])


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
