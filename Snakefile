# frameloom: frames of a 3D-animated film -> a balanced, captioned LoRA dataset.
#
#   snakemake --cores 2                      # the built-in demo (config/config.yaml)
#   snakemake --cores 8 --config input_dir=/data/frames character='{trigger_word: luca}'
#
# The rules only wire files together; the logic is the `frameloom` package in scripts/.

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml of the working directory, else the workflow's own.
LOCAL_CONFIG = Path("config/config.yaml")


configfile: LOCAL_CONFIG if LOCAL_CONFIG.exists() else Path(workflow.basedir, LOCAL_CONFIG)


include: "rules/common.smk"
include: "rules/parameters.smk"
include: "rules/gpu_cap.smk"
include: "rules/demo.smk"
include: "rules/input.smk"
include: "rules/analysis.smk"
include: "rules/strategies.smk"
include: "rules/captions.smk"
include: "rules/curation.smk"
include: "rules/merge.smk"


rule all:
    default_target: True
    input:
        rules.merge.output,
        rules.html_report.output,


# Every run ends with the same summary as `frameloom run`, and one exit-code rule:
# 0 every frame done or excluded on purpose, 1 some frames failed, 2 a configuration error.
onsuccess:
    sys.exit(end_of_run(OUT))


onerror:
    stopped(log, OUT)
