"""Exact resume: everything a resubmitted job needs to continue as if never stopped.

The resume file holds the models, every optimiser, the loop position (stage, epoch, sample
within the epoch, windows trained), the python, numpy, torch and CUDA RNG states, and a
fingerprint (variant, its settings with their hash, code version). No AMP scaler: the GPU path
runs bf16 autocast or fp32, neither of which needs loss scaling. A resume under other settings is
refused naming each differing key with its saved and its new value; the settings that change how,
not what, is computed (``pipeline.train.settings.RUNTIME_KEYS``) are not in them. It lives in a
resume folder that is *not* a declared output, because Snakemake deletes declared outputs before
a job runs; it is written under a temporary name and renamed, so a kill mid-save keeps the
previous one.

The label fits (``pipeline.labels.resume``) keep their state in the same file through the same
functions: their fingerprint names the stage where training's names the variant, and their
position is their own dataclass. ``StopFlag`` is how both loops hear a walltime kill or Ctrl-C, and
``History`` where their attempts add up: Snakemake deletes a job's log before every attempt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.cli import INTERRUPTED_EXIT, TERMINATED_EXIT
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

__all__ = ["Position", "fingerprint", "flatten", "differences", "seed_rng", "capture_rng", "restore_rng",
           "save_resume", "load_resume", "StopFlag", "History"]

RESUME_NAME = "resume.pt"
HISTORY_NAME = "history.log"


@dataclass
class Position:
    """Where the loop is: the next sample to train on."""

    stage: int = 0
    epoch: int = 0
    sample: int = 0          # index into the epoch's permutation
    step: int = 0            # windows (samples) trained so far, all stages; not optimiser steps,
                             # of which a prior variant takes one per frame of a window
    stage_step: int = 0      # windows trained in this stage (what StagePlan.max_steps caps)


def fingerprint(variant: str, settings: Any, code: str) -> dict:
    """What a resume must match: variant (a label fit passes its stage's name), settings (their
    hash, and flat, to name a difference) and code version."""
    canonical = json.loads(json.dumps(settings, sort_keys=True, default=str))
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return {"variant": variant, "settings_sha256": digest[:16], "code_version": code,
            "settings": flatten(canonical)}


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"crn": {"lr": 1e-4}}}`` -> ``{"train.crn.lr": 1e-4}`` (lists stay values)."""
    if not isinstance(settings, dict) or (prefix and not settings):
        return {prefix: settings}
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differences(found: dict, expected: dict) -> list[str]:
    """What makes a saved fingerprint another run's, each as ``key: saved X, now Y``."""
    absent = "(absent)"
    lines = [f"{key}: saved {found.get(key, absent)!r}, now {expected[key]!r}"
             for key in ("variant", "code_version") if found.get(key) != expected[key]]
    if found.get("settings_sha256") != expected["settings_sha256"]:
        if "settings" not in found:       # written before the settings were kept beside their hash
            lines.append(f"settings_sha256: saved {found.get('settings_sha256')!r}, now "
                         f"{expected['settings_sha256']!r} (an older resume file, which does not list its settings)")
        else:
            old, new = found["settings"], expected["settings"]
            lines += [f"{key}: saved {old.get(key, absent)!r}, now {new.get(key, absent)!r}"
                      for key in sorted(old.keys() | new.keys()) if old.get(key, absent) != new.get(key, absent)]
    return lines


def seed_rng(seed: int) -> None:
    """Seed every generator :func:`capture_rng` saves (python, numpy, torch and with it CUDA).

    A fresh run starts them all from the seed. Python and numpy seed theirs from the OS at
    start-up, so seeding torch alone left them different in every process: an unbroken run and a
    resumed one (which restores the states of the job it continues) ended with different states,
    and any draw from them would have made their weights differ too."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume(folder: Path, print_: dict, position: Any, modules: dict[str, torch.nn.Module],
                optimizers: dict[str, torch.optim.Optimizer], extra: dict | None = None,
                finished: bool = False) -> Path:
    """Write the resume file atomically; ``position``: a dataclass (``Position`` or a fit's own).
    ``finished``: the run's last save, after its last step."""
    target = Path(folder) / RESUME_NAME
    state = {
        "fingerprint": print_,
        "finished": finished,
        "position": asdict(position),
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "rng": capture_rng(),
        "extra": extra or {},
    }
    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(state, tmp)
    return target


def load_resume(folder: Path, expected: dict, position_type: type = Position) -> dict | None:
    """The saved state, its position as ``position_type``, or None when there is none; a foreign
    one is an error naming it, unless that run finished: its outputs were made, and a rerun under
    other settings (the reason Snakemake runs the job again) starts afresh."""
    path = Path(folder) / RESUME_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise PipelineError(f"resume file is corrupt ({err.__class__.__name__}: {err}); "
                            "delete it to start over", path) from err
    differs = differences(state.get("fingerprint", {}), expected)
    if differs and state.get("finished"):
        print(f"{path}: the finished run of other settings there ({'; '.join(differs)}) is replaced: "
              "starting afresh", file=sys.stderr)
        return None
    if differs:
        raise PipelineError(f"resume file belongs to another run ({'; '.join(differs)}); "
                            "delete the folder to start over", path)
    state["position"] = position_type(**state["position"])
    return state


# What a loop's exit status after a save says stopped it (StopFlag, History).
STOP_NAMES = {TERMINATED_EXIT: "SIGTERM", INTERRUPTED_EXIT: "Ctrl-C (SIGINT)"}


class StopFlag:
    """SIGTERM (a walltime kill, a cancel) or SIGINT (Ctrl-C) sets ``requested``; the loop saves
    at its next step boundary and exits with ``exit_code``: ``pipeline.cli.TERMINATED_EXIT`` (143)
    after SIGTERM, so Snakemake retries, and 130 after Ctrl-C. Ctrl-C would otherwise lose up to
    ``checkpoint_minutes`` of a local run; a second Ctrl-C interrupts at once, as it usually does.
    ``restore`` puts the previous handlers back."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        # SIGINT only where Ctrl-C would interrupt: a job started in the background (``cmd &``)
        # inherits SIGINT ignored, so the terminal's Ctrl-C is not meant for it.
        handled = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT)
                                      is signal.default_int_handler else [])
        self._previous = {signum: signal.signal(signum, self._handle) for signum in handled}

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = self.signum or signum

    @property
    def exit_code(self) -> int:
        return TERMINATED_EXIT if self.signum == signal.SIGTERM else INTERRUPTED_EXIT

    @property
    def name(self) -> str:
        return STOP_NAMES[self.exit_code]

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


class History:
    """``history.log`` in the resume folder: a line for each start, resume, SIGTERM save, failure
    and finish of a job, with the time, the cluster's job id and the host. Snakemake deletes a
    job's log before each attempt, so a 12-hour job's attempts add up here instead, and each
    attempt's log begins with the lines of those before it."""

    def __init__(self, folder: str | Path, name: str):
        self.path, self.name = Path(folder) / HISTORY_NAME, name

    def begin(self, event: str) -> None:
        if self.path.is_file():
            print(f"{self.name}: earlier attempts ({self.path}):\n{self.path.read_text()}", end="", file=sys.stderr)
        self.add(event)

    def stopped(self, stop: BaseException, where: str) -> None:
        """Record why the attempt ends early: a save on SIGTERM (exit 143) or Ctrl-C (130), or an error."""
        if isinstance(stop, SystemExit) and stop.code in STOP_NAMES:
            self.add(f"{STOP_NAMES[stop.code]}: saved at {where}; a resubmitted job goes on from there")
        else:
            self.add(f"stopped at {where}: {type(stop).__name__}: {stop}")

    def add(self, event: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        job = os.environ.get("PBS_JOBID") or os.environ.get("SLURM_JOB_ID") or f"pid {os.getpid()}"
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        with self.path.open("a") as handle:
            handle.write(f"{stamp} {job} on {socket.gethostname()}: {event}\n")
