"""The slurm profile on a real Slurm: a one-node cluster started here, on localhost.

The test starts munged, slurmctld and slurmd (Debian's slurm-wlm; set up as in
reference/slurm-local.md, everything under a temporary folder: key, socket, state, spool, logs,
free ports), then runs the real graph's train -> synthesize for one demo variant at a tiny
size through `snakemake --profile slurm`. While training runs it is cancelled with scancel, as
a walltime kill or a preemption would stop it: the job saves its resume state on SIGTERM, Slurm
records the job CANCELLED, Snakemake's retry resubmits it, and the new job resumes from the
saved position. The daemons are stopped by the process ids this test started, never by name.

The node declares one GPU (a GRES with no device behind it), so the rules' gpu=1 becomes a real
``--gpus=1`` request that Slurm schedules; the stages themselves run on the CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from conftest import BIN, REPO, make_packed_city

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def why_slurm_cannot_start() -> str | None:
    missing = [name for name in DAEMONS + CLIENTS if find_tool(name) is None]
    if missing:
        return (f"Slurm is not installed here (missing {', '.join(missing)}); "
                "`.ci/slurm_setup.sh` installs slurm-wlm and munge")
    if os.geteuid() != 0:
        return f"slurmd must run as root to start jobs as their owner, and this runs as uid {os.geteuid()}"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalSlurm:
    """A running one-node cluster: its folder, the client environment and the daemons started."""

    root: Path
    env: dict[str, str]
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def jobs(self) -> dict[str, str]:
        """Job id -> state of every job the controller remembers (MinJobAge keeps finished ones)."""
        listing = self.run("squeue", "-h", "-t", "all", "-o", "%i %T", check=False).stdout
        return dict(line.split() for line in listing.splitlines() if line.strip())

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """Cancel what is left, let the steps end, then stop the daemons this test started."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--state=PENDING,RUNNING,SUSPENDED", "--user", "root", check=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                    state in ("RUNNING", "COMPLETING", "PENDING") for state in self.jobs().values()):
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.daemons.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def slurm_conf(root: Path, socket_path: Path) -> str:
    host = socket.gethostname().split(".")[0]
    meminfo = Path("/proc/meminfo").read_text()
    available_mb = int(meminfo.split("MemAvailable:")[1].split()[0]) // 1024
    return "\n".join([
        "ClusterName=vidsynth-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={socket_path}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "AccountingStorageType=accounting_storage/none",     # no slurmdbd: sacct knows nothing,
        "JobAcctGatherType=jobacct_gather/none",             # so status comes from squeue ...
        "JobCompType=jobcomp/none",
        "MinJobAge=600",                                     # ... which keeps finished jobs 10 min
        "KillWait=30",                                       # SIGTERM, then SIGKILL 30 s later
        "ReturnToService=2",
        "SchedulerParameters=sched_interval=2",
        "GresTypes=gpu",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={max(1024, available_mb - 2048)} "
        "Gres=gpu:1 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def start_local_slurm(root: Path) -> LocalSlurm:
    """munged, slurmctld and slurmd in the foreground (so their pids are ours), all state in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)                                    # munged refuses keys in open folders
    for folder in ("state", "spool"):
        (root / folder).mkdir(exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = root / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, socket_path))
    host = socket.gethostname().split(".")[0]
    (root / "gres.conf").write_text(f"AutoDetect=off\nNodeName={host} Name=gpu File=/dev/null\n")
    # A real cluster keeps slurm.conf in /etc/slurm (or serves it configless); this one keeps it
    # here and names it in SLURM_CONF. The plugin's job step drops SLURM_* variables before its
    # inner `srun`, so an srun first on PATH names the config again and runs the real one.
    wrappers = root / "bin"
    wrappers.mkdir(exist_ok=True)
    (wrappers / "srun").write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {find_tool("srun")} "$@"\n')
    (wrappers / "srun").chmod(0o755)
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=os.pathsep.join([str(wrappers), str(BIN), os.environ["PATH"],
                                                                       *SBIN]))
    cluster = LocalSlurm(root, env)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    try:
        cluster.daemons["munged"] = subprocess.Popen(
            [find_tool("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
             f"--pid-file={root / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
             f"--seed-file={root / 'munged.seed'}"], **quiet)
        wait_for(lambda: socket_path.exists(), 10, "munged did not open its socket", cluster)
        cluster.daemons["slurmctld"] = subprocess.Popen([find_tool("slurmctld"), "-D", "-f", str(conf)], **quiet)
        cluster.daemons["slurmd"] = subprocess.Popen([find_tool("slurmd"), "-D", "-f", str(conf)], **quiet)
        wait_for(lambda: cluster.run("sinfo", "-h", "-o", "%t", check=False).stdout.strip() == "idle", 60,
                 "the node never became idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for(condition, seconds: float, message: str, cluster: LocalSlurm | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{message} within {seconds} s" + (f"\n{cluster.logs()}" if cluster else ""))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Iterator[LocalSlurm]:
    reason = why_slurm_cannot_start()
    if reason:
        pytest.skip(reason)
    cluster = start_local_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


def test_the_local_cluster_runs_a_gpu_job(slurm):
    done = slurm.run("srun", "--gpus=1", "-c", "1", "--mem=100", "sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES")
    assert done.stdout.strip() == "gpus=0"


# --- the graph ------------------------------------------------------------------------------

VARIANT = "v02"                 # a CRN without prior frames: two stages, the second grows
TINY_TRAIN = {
    "window": 3,
    "checkpoint_minutes": 30,    # only SIGTERM saves during this test
    "image_data": "train",       # the packed train split (the workdir holds no gtfine_train.h5)
    "crn": {"stages": [{"height": 16, "width": 32, "epochs": 60}, {"height": 32, "width": 64, "epochs": 1}]},
    "pix2pixhd": {"stages": [{"height": 32, "width": 64, "epochs": 1}]},       # not trained here: packed sizes
    "model_overrides": {"generator": {"width_divisor": 64}, "discriminator": {"width_divisor": 16},
                        "encoder": {"width_divisor": 4}},
}


@pytest.fixture(scope="module")
def graph_workdir(tmp_path_factory) -> Path:
    """A workdir holding the packed splits of a tiny synthetic city, as the pack rule leaves them."""
    work = tmp_path_factory.mktemp("slurm_graph")
    packed = make_packed_city(work / "city", train=2, val=2)
    (work / "results" / "data").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copy(packed[split], work / "results" / "data" / f"{split}.h5")
    fvd = {"height": 16, "width": 32, "frames": 4, "batch_size": 2, "batches": 1}     # the 2 test videos
    # The packed city's geometry (conftest.make_packed_city's defaults), so the config describes it.
    data = {"frame_height": 32, "frame_width": 64, "frames_per_snippet": 8, "annotated_frame": 5}
    tiny = {"data": data, "subset": {"test_sequences": 2}, "pack": {"resolutions": [[16, 32], [32, 64]]},
            "train": TINY_TRAIN, "fvd": fvd}
    (work / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    return work


def snakemake_slurm(workdir: Path, env: dict, console: Path, *args: str) -> subprocess.Popen:
    """`snakemake --profile slurm` from the repository root, on this machine's sizes; its
    output goes to ``console``."""
    command = [
        str(BIN / "snakemake"), "--profile", "slurm", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        f"results/train/{VARIANT}/model.pt", f"results/videos/{VARIANT}.h5",
        "--allowed-rules", "train", "synthesize",            # the packed data is given, as made by pack
        "--configfile", str(REPO / "config" / "demo.yaml"), str(workdir / "tiny.yaml"),
        # One node with 2 CPUs: the rules' study sizes (4 threads, 32 GB) would never be scheduled.
        # (This replaces the profile's set-resources, so its early-SIGTERM request is repeated.)
        "--set-threads", "train=1", "synthesize=1",
        "--set-resources", "train:mem_mb=1500", "train:slurm_extra='--signal=TERM@300'", "synthesize:mem_mb=1500",
        # No accounting here (sacct is empty): squeue, and quick polls for a quick test.
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--latency-wait", "5", *args,
    ]
    with console.open("w") as out:                     # the child keeps its own copy
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def loss_rows(workdir: Path) -> int:
    log = workdir / "results" / "resume" / VARIANT / "losses.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.is_file() else 0


def without_shown_logs(console: str) -> str:
    """Snakemake's own lines, less the failed jobs' logs it prints (the profile's show-failed-logs:
    "Logfile PATH:", a bar of "=", the log, the same bar), whose lines may repeat its own."""
    return re.sub(r"^Logfile [^\n]*:\n(=+)\n.*?\n\1$", "", console, flags=re.M | re.S)


@pytest.mark.slow
def test_training_cancelled_mid_run_resumes_on_its_retry(slurm, graph_workdir):
    work = graph_workdir
    env = dict(slurm.env, OMP_NUM_THREADS="1")
    earlier = set(slurm.jobs())
    console = work / "snakemake.out"
    run = snakemake_slurm(work, env, console)
    try:
        wait_for(lambda: loss_rows(work) >= 5 or run.poll() is not None, 150, "training never got going", slurm)
        assert run.poll() is None, console.read_text()
        running = [job for job, state in slurm.jobs().items() if state == "RUNNING"]
        assert len(running) == 1, slurm.jobs()
        slurm.run("scancel", running[0])                       # SIGTERM now, SIGKILL after KillWait
        wait_for(lambda: (work / "results" / "resume" / VARIANT / "resume.pt").exists(), 60,
                 "no resume state was saved on SIGTERM", slurm)
        saved = torch.load(work / "results" / "resume" / VARIANT / "resume.pt", map_location="cpu",
                           weights_only=False)
        run.wait(timeout=240)
    finally:
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=30)
    output = without_shown_logs(console.read_text())
    assert run.returncode == 0, output[-6000:] + slurm.logs()

    states = {job: state for job, state in slurm.jobs().items() if job not in earlier}
    assert states[running[0]] == "CANCELLED", states
    assert sorted(states.values()) == ["CANCELLED", "COMPLETED", "COMPLETED"], states   # train x2, synthesize
    assert len(re.findall(r"^rule train:", output, re.M)) == 2          # submitted again once: its retry
    assert len(re.findall(r"^rule synthesize:", output, re.M)) == 1

    # The retry resumed: its progress bar (the rule's log is the last attempt's, Snakemake clears
    # it before a job starts) opens at the step saved on SIGTERM, not at 0; the loss log has every
    # step exactly once.
    step = saved["position"]["step"]
    assert 5 <= step < 120
    train_log = (work / "logs" / "train" / f"{VARIANT}.log").read_text()
    counts = [int(m[1]) for m in re.finditer(rf"{VARIANT} stage 0 16x32:\s+\d+%\|[^|]*\|\s*(\d+)/\d+", train_log)]
    assert counts and counts[0] == step, counts[:5]
    losses = (work / "results" / "train" / VARIANT / "losses.csv").read_text().splitlines()
    rows = [line.split(",") for line in losses[1:]]
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    summary = json.loads((work / "results" / "train" / VARIANT / "summary.json").read_text())
    assert summary["steps"] == len(rows) > step
    assert (work / "results" / "videos" / f"{VARIANT}.h5").is_file()

    # Nothing finished is recomputed.
    again = snakemake_slurm(work, env, work / "dry_run.out", "-n")
    again.wait(timeout=120)
    dry_run = (work / "dry_run.out").read_text()
    assert again.returncode == 0 and "Nothing to be done" in dry_run, dry_run[-3000:]
