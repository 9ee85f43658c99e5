"""The strategies and the batched model steps: names and wiring, in one place.

Nothing here imports: every layer may read it (the rules, the plan, the report).
"""

STRATEGIES = ("keep_full", "segment", "create_occlusion", "enhance_segment")

# The batched model steps (frameloom.model_step), each one rule and one conda env: the
# strategy block it reads, the keys of it that change its results (and so rerun it and
# only what follows), the model requirement it loads (backends.model_requirements) and
# its env file under envs/.
MODEL_STEPS = {
    "upscale": ("enhance_segment", ("enhancement_steps", "upscale_model", "upscale_factor", "upscale_below",
                                    "upscale_tile", "deblur_below"), "upscale", "realesrgan"),
    "restore_faces": ("enhance_segment", ("enhancement_steps", "face_enhance_model", "face_enhance_fidelity",
                                          "identity_max_drift", "deblur_below"), "face_enhance", "face_restore"),
    "masks": ("segment", ("segmentation_model", "min_instance_size", "points_per_side"), "segmentation", "sam2"),
    "inpaint": ("segment", ("inpainting_model", "inpainting_fallback", "mask_dilation"), "inpainting", "lama"),
}
