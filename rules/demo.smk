# Synthetic "3D character" frames with ground truth, for the demo run and the tests.


rule demo_frames:
    output:
        frames=[f"{DEMO_FRAMES_DIR}/demo_{i:04d}.png" for i in range(RUN.run["demo"]["frames"])],
        truth=directory(f"{OUT}/demo/truth"),
    log:
        f"{LOGS}/demo_frames.log",
    params:
        demo=RUN.run["demo"],
    run:
        stages.render_demo(
            output.frames,
            output.truth,
            log=log[0],
            n=params.demo["frames"],
            seed=params.demo["seed"],
            width=params.demo["width"],
            height=params.demo["height"],
        )
