"""Resume for the label fits: with ``--resume FOLDER``, fit_segmenter and fit_instances survive a
walltime kill as training does (``pipeline.train.loop``).

The fit saves its whole state into ``FOLDER/resume.pt`` every ``checkpoint_minutes`` and on
SIGTERM or Ctrl-C, and after SIGTERM exits with status 143 (``pipeline.cli.TERMINATED_EXIT``, 130
after Ctrl-C) so the rule's retries resubmit it: the model, the optimiser, the steps taken, the
numpy Generator its batches and augmentation draw from with the permutation it is part-way through
(``runtime.EpochBatches``), the python, numpy and torch RNG states, the losses so far (the
summary's final loss averages the last tenth) and the seconds spent. A resubmitted job with the
same settings, frames and code goes on from there and ends with the weights of an unbroken run
(bit for bit on the CPU). The file and its checks are training's (``pipeline.train.state``): one
from the other fit, other settings, other frames or other code is refused, naming each differing
key, unless that run finished (then a rerun under other settings starts afresh). When the fit
ends its last state stays in the folder, marked finished, as training's does, so a rerun with
the same settings writes the checkpoint without fitting again. ``history.log`` beside it lists
every attempt.

Without a folder nothing is saved or restored, and SIGTERM ends the fit at once (``pipeline.cli``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.labels.frames import FrameRef
from pipeline.labels.runtime import EpochBatches, warmup_poly_lr
from pipeline.provenance import code_version
from pipeline.train.state import History, StopFlag, fingerprint, load_resume, restore_rng, save_resume

__all__ = ["DEFAULT_CHECKPOINT_MINUTES", "FitPosition", "FitResume", "frames_identity", "add_resume_arguments"]

# Training's default (pipeline.train.settings.RUNTIME_DEFAULTS), not imported: that module in the
# fits' code version would refit the labellers whenever training's settings code changes.
DEFAULT_CHECKPOINT_MINUTES = 30.0


@dataclass
class FitPosition:
    """Where a fit is between two steps."""

    step: int = 0                                        # optimiser steps taken
    pending: list[int] = field(default_factory=list)     # EpochBatches.pending
    generator: dict = field(default_factory=dict)        # the batches' and augmentation's Generator state


def frames_identity(frames: Sequence[FrameRef]) -> dict[str, Any]:
    """The frames a fit trains on, for its fingerprint: how many, and a hash of their names in
    order (not their folder: the same data moved elsewhere is the same fit)."""
    names = "\n".join(f"{ref.snippet.split}/{ref.snippet.frame_stem(ref.number)}" for ref in frames)
    return {"count": len(frames), "sha256": hashlib.sha256(names.encode()).hexdigest()[:16]}


class FitResume:
    """A fit's resume folder, or none (``folder=None``: nothing is saved or restored).

    Made first thing in a fit, so a foreign or corrupt resume file stops it before any work.
    ``step`` and ``losses`` are where the fit goes on from (0 and [] on a fresh start); the fit
    appends each step's loss to ``losses`` and calls ``step_done`` inside ``running``.
    """

    def __init__(self, folder: str | Path | None, stage: str, settings: Mapping[str, Any],
                 checkpoint_minutes: float = DEFAULT_CHECKPOINT_MINUTES):
        self.stage, self.folder = stage, None if folder is None else Path(folder)
        self.expected: dict = {}
        self._state: dict | None = None
        if self.folder is not None:
            self.expected = fingerprint(stage, settings, code_version(f"pipeline.labels.{stage}"))
            self._state = load_resume(self.folder, self.expected, FitPosition)
        self.step = self._state["position"].step if self._state else 0
        self.losses: list[float] = list(self._state["extra"]["losses"]) if self._state else []
        self._elapsed_before = self._state["extra"]["elapsed"] if self._state else 0.0
        self._interval = 60.0 * checkpoint_minutes
        self._started = self._last_save = time.monotonic()
        self._parts: tuple[torch.nn.Module, torch.optim.Optimizer, EpochBatches] | None = None
        self._terminate: StopFlag | None = None
        self._history = History(self.folder, stage) if self.folder is not None else None

    @contextmanager
    def running(self, model: torch.nn.Module, optimiser: torch.optim.Optimizer,
                batches: EpochBatches) -> Iterator[FitResume]:
        """Restore the saved state into these (where there is one), then save them while the fit
        runs: on the timer and on SIGTERM or Ctrl-C (``step_done``) and at its end (``finish``)."""
        self._parts = (model, optimiser, batches)
        resumed = self._state is not None
        if resumed:
            self._restore()
            print(f"{self.stage}: resuming at step {self.step} from {self.folder}", file=sys.stderr)
        if self._history is not None:
            self._history.begin(f"resumed at step {self.step}" if resumed else "started")
        self._started = self._last_save = time.monotonic()
        self._terminate = StopFlag() if self.folder is not None else None
        try:
            yield self
        except BaseException as stop:
            if self._history is not None:
                self._history.stopped(stop, f"step {self.step}")
            raise
        finally:
            if self._terminate is not None:
                self._terminate.restore()
                self._terminate = None

    def step_done(self) -> None:
        """One optimiser step more: save when the interval has passed or SIGTERM or Ctrl-C came, and
        after either exit (143, 130). Between saves it costs a clock read (nothing without a folder)."""
        self.step += 1
        if self._terminate is None:
            return
        if self._terminate.requested or time.monotonic() - self._last_save >= self._interval:
            self._save()
            if self._terminate.requested:
                print(f"{self.stage}: {self._terminate.name}: step {self.step} saved in {self.folder}; a resubmitted "
                      "job goes on from there", file=sys.stderr)
                raise SystemExit(self._terminate.exit_code)

    def finish(self) -> None:
        """Save the finished fit's state, marked finished, as training saves after its last stage."""
        if self.folder is not None:
            self._save(finished=True)
            self._history.add(f"finished: {self.step} steps")

    def elapsed(self) -> float:
        """Seconds fitting, the jobs before this one included."""
        return self._elapsed_before + time.monotonic() - self._started

    def _restore(self) -> None:
        model, optimiser, batches = self._parts
        model.load_state_dict(self._state["modules"]["model"])
        optimiser.load_state_dict(self._state["optimizers"]["optimiser"])
        position = self._state["position"]
        batches.pending = list(position.pending)
        batches.rng.bit_generator.state = position.generator
        restore_rng(self._state["rng"])
        self._state = None      # a second copy of the weights and moments: not kept for the whole fit

    def _save(self, finished: bool = False) -> None:
        model, optimiser, batches = self._parts
        position = FitPosition(self.step, list(batches.pending), batches.rng.bit_generator.state)
        save_resume(self.folder, self.expected, position, {"model": model}, {"optimiser": optimiser},
                    extra={"losses": list(self.losses), "elapsed": self.elapsed()}, finished=finished)
        self._last_save = time.monotonic()


def run_fit(name: str, model: nn.Module, optimiser: torch.optim.Optimizer, batches: EpochBatches,
            resume: FitResume, steps: int, lr: float, warmup_fraction: float,
            loss_of: Callable[[list[int]], torch.Tensor], grad_clip: float | None = None) -> dict[str, Any]:
    """The fits' loop: ``steps`` optimiser steps, each on a batch of frame indices whose loss
    ``loss_of`` computes, at a learning rate warmed up linearly over ``warmup_fraction`` of the
    steps then decayed (poly); the state saved on ``resume``'s timer and on SIGTERM or Ctrl-C,
    and a resumed fit going on from its step. Returns the fit's summary for its checkpoint."""
    warmup = max(1, round(warmup_fraction * steps))
    with (resume.running(model, optimiser, batches),
          tqdm(total=steps, initial=resume.step, desc=name, unit="step", disable=None) as progress):
        for step, picks in zip(range(resume.step, steps), batches):
            for group in optimiser.param_groups:
                group["lr"] = warmup_poly_lr(step, steps, lr, warmup)
            loss = loss_of(picks)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimiser.step()
            resume.losses.append(loss.item())
            progress.set_postfix(loss=f"{resume.losses[-1]:.3f}")
            progress.update()
            resume.step_done()
        resume.finish()
    return {"steps": steps, "train_frames": batches.samples, "seconds": round(resume.elapsed(), 1),
            "final_loss": float(np.mean(resume.losses[-max(1, steps // 10):]))}


def add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume FOLDER`` and ``--checkpoint-minutes``, the same for both fits."""
    parser.add_argument("--resume", metavar="FOLDER",
                        help="save the fit's state here every --checkpoint-minutes and on SIGTERM or Ctrl-C "
                             "(then exit 143 or 130), and go on from the state found here; not an output (the "
                             "rule passes results/resume/<stage>)")
    parser.add_argument("--checkpoint-minutes", type=float, default=DEFAULT_CHECKPOINT_MINUTES, metavar="MINUTES",
                        help=f"how often --resume saves (default {DEFAULT_CHECKPOINT_MINUTES:g}); "
                             "the fit's result does not depend on it")
