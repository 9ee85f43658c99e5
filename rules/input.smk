# Where frames come from besides the images in input_dir: video files (one
# extraction job per video) and the temporal context expansion of a curated set.
# Both are checkpoints whose outputs frame_ids() reads, so adding a video or a
# curated frame adds only the frames it brings.


checkpoint extract_video:
    input:
        lambda wildcards: str(VIDEOS[wildcards.video]),
    output:
        directory(f"{VIDEO_FRAMES_DIR}/{{video}}"),
    log:
        f"{LOGS}/extract_video/{{video}}.log",
    benchmark:
        f"{LOGS}/benchmarks/extract_video/{{video}}.tsv"
    conda:
        "../envs/video.yaml"
    params:
        python=MODEL_PYTHON,
        scripts=SCRIPTS_DIR,
        sampling=json.dumps(RUN.run["video"], sort_keys=True),
    shell:
        "PYTHONPATH={params.scripts:q} {params.python} -m frameloom.video {input:q} --out-dir {output:q}"
        " --sampling {params.sampling:q} --stem {wildcards.video:q} --log {log:q}"


# The curated frames, matched to input_dir by name; their neighbours are read from input_dir.
CURATED_DIR = RUN.resolve(EXPANSION["curated_dir"]) if EXPANDING else None
CURATED = {rel: str(CURATED_DIR / rel) for rel in relative_files(CURATED_DIR)} if EXPANDING else {}


checkpoint temporal_expansion:
    input:
        curated=list(CURATED.values()),
        frames=[str(path) for path in FRAMES.values()] if EXPANDING else [],
    output:
        f"{OUT}/temporal_expansion.json",
    log:
        f"{LOGS}/temporal_expansion.log",
    params:
        curated=sorted(CURATED),
        frames=({FRAMES[frame].relative_to(INPUT_ROOT).as_posix(): frame for frame in FRAMES} if EXPANDING else {}),
        # The folder the frames' relative paths start from (a function: it is not a file prefix to rewrite).
        input_root=lambda wildcards: str(INPUT_ROOT),
        settings=EXPANSION,
    run:
        stages.temporal_expansion(
            params.curated, params.frames, params.input_root, params.settings, output[0], log[0]
        )
