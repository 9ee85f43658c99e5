"""frameloom: turn animated-film frames into a balanced, captioned LoRA dataset.

The Snakemake rules under ``rules/`` only wire files together; every stage's
logic lives in this package so it can be tested and benchmarked directly.
"""

__version__ = "0.1.0"
