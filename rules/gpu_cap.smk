# profiles/default caps the GPU jobs in flight at `resources: gpu: 1` (two jobs
# never share a workstation's card), and Snakemake loads it with
# --profile profiles/slurm too. There SLURM hands out the cards, so the cap is
# dropped unless --resources was given (frameloom.devices.keeps_workstation_gpu_cap).
# Snakemake submits to nodes (`_nodes` is set) only on cluster and cloud executors.
import sys

from frameloom.devices import keeps_workstation_gpu_cap

if not keeps_workstation_gpu_cap(workflow.global_resources["_nodes"].value is not None, sys.argv):
    workflow.global_resources["gpu"] = None
