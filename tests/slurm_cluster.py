"""A real single-node SLURM for the profile tests: munged, slurmctld and slurmd in the foreground.

Needs root and Debian's munge, slurmctld, slurmd and slurm-client packages.
Without accounting (no slurmdbd) there is no sacct: the profile polls with
squeue, which forgets finished jobs after MinJobAge, hence MinJobAge 600.
Job steps (srun inside a job) read the default /etc/slurm/slurm.conf, so the
config is written there too (an existing one is restored afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def unavailable_reason() -> str | None:
    """Why a SLURM cannot be stood up here, or None."""
    if os.geteuid() != 0:
        return "a test SLURM needs root (munged, slurmctld and slurmd run as root here)"
    missing = [name for name in BINARIES if not shutil.which(name)]
    if missing:
        return f"SLURM packages missing ({', '.join(missing)}): apt-get install munge slurmctld slurmd slurm-client"
    return None


def _node_line() -> str:
    """This machine as slurmd sees it (CPUs, sockets, memory), the first line of `slurmd -C`."""
    return subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def _config(root: Path, partition: str, gpus: int) -> str:
    host = _node_line().split()[0].split("=")[1]
    return "\n".join([
        "ClusterName=frameloom-test",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log",
        f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MinJobAge=600",
        "ReturnToService=2",
        "MpiDefault=none",
        "GresTypes=gpu",
        f"{_node_line()} Gres=gpu:{gpus} State=UNKNOWN",
        f"PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"


class SlurmCluster:
    """Start with ``start()``, stop with ``stop()`` (by PID); ``partition`` is its only partition.

    The node has ``gpus`` GPUs as far as SLURM's scheduler knows: real GRES
    (``--gpus`` requests, allocation, CUDA_VISIBLE_DEVICES) backed by stand-in
    device files, since the machine has no GPU.
    """

    def __init__(self, root: Path, partition: str = "main", gpus: int = 2):
        self.root, self.partition, self.gpus = Path(root), partition, gpus
        self._processes: list[subprocess.Popen] = []
        self._saved_conf: bytes | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemons; on failure stop what started (and restore the system config) before raising."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        conf = self.root / "slurm.conf"
        conf.write_text(_config(self.root, self.partition, self.gpus))
        # slurmd reads gres.conf beside slurm.conf; each GPU needs a device file.
        devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"][: self.gpus]
        (self.root / "gres.conf").write_text("AutoDetect=off\n" + "".join(f"Name=gpu File={d}\n" for d in devices))
        if SYSTEM_CONF.exists():
            self._saved_conf = SYSTEM_CONF.read_bytes()
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(conf, SYSTEM_CONF)
        munge_run = Path("/run/munge")
        munge_run.mkdir(parents=True, exist_ok=True)
        shutil.chown(munge_run, "munge", "munge")
        self._spawn(["runuser", "-u", "munge", "--", "munged", "-F", "--force"], "munged.out")
        self._wait(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, timeout, "munged")
        self._spawn(["slurmctld", "-D", "-f", str(conf)], "slurmctld.out")
        self._spawn(["slurmd", "-D", "-f", str(conf)], "slurmd.out")
        self._wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True,
                                                    text=True).stdout, timeout, "an idle node")

    def _spawn(self, command: list[str], log_name: str) -> None:
        log = open(self.root / log_name, "w")  # noqa: SIM115 - open for the daemon's lifetime
        self._processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-1500:] for p in sorted(self.root.glob("*.out")))
                raise RuntimeError(f"test SLURM: no {what} after {timeout:.0f} s\n{logs}")
            time.sleep(0.5)

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True)
        for process in reversed(self._processes):
            process.terminate()
        for process in reversed(self._processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._saved_conf is not None:
            SYSTEM_CONF.write_bytes(self._saved_conf)
        else:
            SYSTEM_CONF.unlink(missing_ok=True)
